// Parses an AsyncAPI document with @asyncapi/parser, as a subscriber's code generator would:
// exits 1 when the parser returns no document or reports an error. Usage: node asyncapi-parse.mjs FILE
import { Parser, fromFile } from "@asyncapi/parser";

const ERROR = 0; // DiagnosticSeverity.Error
const [file] = process.argv.slice(2);
const { document, diagnostics } = await fromFile(new Parser(), file).parse();
const errors = diagnostics.filter((d) => d.severity === ERROR);
for (const d of errors) console.error(`${d.path.join(".")}: ${d.code}: ${d.message}`);
if (document === undefined || errors.length > 0) {
  console.error(`${file}: the parser returned ${document === undefined ? "no document" : "a document"}, ${errors.length} error(s)`);
  process.exit(1);
}
const channels = document.channels().all().map((c) => c.address());
console.log(`${file}: AsyncAPI ${document.version()}, ${channels.length} channels, ${document.operations().length} operations`);
