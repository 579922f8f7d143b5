// Compiles every JSON Schema in a folder with ajv in strict mode (draft 2020-12), then validates
// records against them. Exits 1 on a schema ajv refuses or a record a schema rejects.
// Usage: node ajv-check.mjs SCHEMA_DIR [RECORDS.json]   (RECORDS: {"<schema file>": [value, ...]})
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [schemaDir, recordsFile] = process.argv.slice(2);
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validators = {};
let failed = 0;
for (const name of readdirSync(schemaDir).filter((n) => n.endsWith(".json")).sort()) {
  try {
    validators[name] = ajv.compile(JSON.parse(readFileSync(join(schemaDir, name), "utf8")));
  } catch (error) {
    console.error(`${name}: ${error.message}`);
    failed += 1;
  }
}
console.log(`${Object.keys(validators).length} schemas compiled in strict mode`);
if (recordsFile) {
  for (const [name, values] of Object.entries(JSON.parse(readFileSync(recordsFile, "utf8")))) {
    const validate = validators[name];
    if (validate === undefined) {
      console.error(`${name}: no such schema in ${schemaDir}`);
      failed += 1;
      continue;
    }
    values.forEach((value, index) => {
      if (!validate(value)) {
        console.error(`${name}[${index}]: ${ajv.errorsText(validate.errors)}`);
        failed += 1;
      }
    });
    console.log(`${name}: ${values.length} records checked`);
  }
}
process.exit(failed ? 1 : 0);
