"""Recall of the PII masking per surface form, before and after, and texts masked per second.

    python -m benchmarks.bench_pii                      # this tree vs. the masking of --before
    python -m benchmarks.bench_pii --extra-site DIR     # also phonenumbers / Presidio from DIR

"Before" is `messagehooks/pii.py` as of the git revision `--before` (read with ``git show``).
A value counts as found when the text around it comes out unchanged and nothing of the value is
left but masks and separators (``GB82 WEST <PHONE>`` is a miss). False positives: the share of
`NOT_PII` texts (order ids, dates, prices, ...) that come out changed. Speed: texts per second,
best of three, over simulated chat texts (mostly without PII) and over the PII corpus.
"""

import argparse
import importlib.util
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.pii_forms import CONTEXTS, FORMS, NOT_PII, Form
from devtools.simulate import SimulationOptions, chat_script
from messagehooks.pii import MASKS, mask_pii
from messagehooks.pii.normalize import normalize

ROOT = Path(__file__).resolve().parents[1]
Masker = Callable[[str], str]
_MASK_WORD = re.compile(r"<[A-Z_]+>")


def masker_at(revision: str) -> Masker:
    """`mask_pii` of messagehooks/pii.py at a git revision of this repository."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:messagehooks/pii.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "pii_before.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("pii_before", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    masker: Masker = module.mask_pii
    return masker


def found(masked: str, before: str, after: str) -> bool:
    """Whether the value between `before` and `after` is fully masked and the rest untouched."""
    if not (masked.startswith(before) and masked.endswith(after)):
        return False
    middle = masked[len(before) : len(masked) - len(after)]
    return not any(char.isalnum() for char in _MASK_WORD.sub("", middle))


def corpus(form: Form, count: int, seed: int) -> list[tuple[str, str, str]]:
    """`count` (text before, text after, value) samples of a form."""
    rng = random.Random(f"{seed}:{form.name}")
    samples = []
    for _ in range(count):
        before, after = rng.choice(CONTEXTS)
        samples.append((before + form.wrap[0], form.wrap[1] + after, form.render(rng)))
    return samples


def recall(masker: Masker, samples: list[tuple[str, str, str]]) -> float:
    """Share of the samples whose value `masker` masks."""
    hits = sum(found(masker(b + v + a), b, a) for b, a, v in samples)
    return hits / len(samples)


def false_positive_rate(masker: Masker) -> float:
    """Share of the look-alike texts (in every context) that `masker` changes."""
    texts = [b + text + a for text in NOT_PII for b, a in CONTEXTS]
    return sum(masker(t) != t for t in texts) / len(texts)


def per_second(masker: Masker, texts: list[str]) -> float:
    """Texts masked per second, best of three passes."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for text in texts:
            masker(text)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def chat_texts(count: int) -> list[str]:
    """Texts of simulated chats (five languages, 25% of customers type an e-mail or a phone)."""
    options = SimulationOptions(chats=count, seed=11)
    texts: list[str] = []
    index = 0
    while len(texts) < count:
        for item in chat_script(options, index).messages:
            body = item.message.get("data", {}).get("body")
            if isinstance(body, str):
                texts.append(body)
        index += 1
    return texts[:count]


def pair_rates(count: int) -> str:
    """Turn pairs of simulated chats encoded per second, plain and through the masking policy."""
    from benchmarks.bench_backfill import simulated_messages
    from features.batch import build_dataset
    from streams.codec import encode_record

    pairs, _ = build_dataset(simulated_messages(count))
    rates = []
    for masked in (False, True):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for pair in pairs:
                encode_record(pair, masked=masked)
            best = min(best, time.perf_counter() - started)
        rates.append(len(pairs) / best)
    return f"{rates[0]:,.0f} unmasked, {rates[1]:,.0f} masked ({len(pairs)} pairs)"


def phonenumbers_masker(region: str, leniency: str, normalized: bool) -> Masker:
    """Phones only, with Google's libphonenumber port (`phonenumbers`), on the text or our copy."""
    import phonenumbers  # optional, from --extra-site

    level = getattr(phonenumbers.Leniency, leniency)

    def mask(text: str) -> str:
        copy = normalize(text) if normalized else None
        scanned = copy.text if copy is not None else text
        spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(scanned, region, leniency=level)]
        if copy is not None:
            spans = [copy.original_span(s, e) for s, e in spans]
        for start, end in reversed(spans):
            text = text[:start] + "<PHONE>" + text[end:]
        return text

    return mask


def presidio_masker() -> Masker:
    """Presidio's pattern recognizers (e-mail, card, IBAN, phone) without an NLP model."""
    import logging

    from presidio_analyzer.predefined_recognizers import (  # optional
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        PhoneRecognizer,
    )

    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    recognizers = [EmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), PhoneRecognizer()]

    def mask(text: str) -> str:
        spans = sorted(
            (r.start, r.end)
            for recognizer in recognizers
            for r in recognizer.analyze(text, recognizer.supported_entities, None)
        )
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        for start, end in reversed(merged):
            text = text[:start] + "<PII>" + text[end:]
        return text

    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="19d2bd0", help="git revision of the 'before' masking")
    parser.add_argument("--samples", type=int, default=200, help="samples per surface form")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--texts", type=int, default=20_000, help="simulated chat texts for the speed")
    parser.add_argument("--extra-site", type=Path, help="site-packages holding phonenumbers/presidio")
    args = parser.parse_args()
    if args.extra_site:
        sys.path.append(str(args.extra_site))
    maskers: dict[str, Masker] = {"before": masker_at(args.before), "after": mask_pii}
    kinds: dict[str, set[str]] = {"before": set(), "after": set()}
    if args.extra_site:
        for leniency in ("POSSIBLE", "VALID"):
            name = f"phonenumbers {leniency} ES"
            maskers[name] = phonenumbers_masker("ES", leniency, normalized=False)
            kinds[name] = {"PHONE"}
        maskers["phonenumbers VALID ES, our copy"] = phonenumbers_masker("ES", "VALID", normalized=True)
        kinds["phonenumbers VALID ES, our copy"] = {"PHONE"}
        maskers["Presidio patterns"] = presidio_masker()
        kinds["Presidio patterns"] = set()
    samples = {form.name: corpus(form, args.samples, args.seed) for form in FORMS}
    names = list(maskers)
    print("| surface form | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    totals = dict.fromkeys(names, 0.0)
    counted = dict.fromkeys(names, 0)
    for form in FORMS:
        cells = []
        for name in names:
            if kinds[name] and form.kind not in kinds[name]:
                cells.append("")
                continue
            value = recall(maskers[name], samples[form.name])
            totals[name] += value
            counted[name] += 1
            cells.append(f"{100 * value:.0f}%")
        print(f"| {form.name} | " + " | ".join(cells) + " |")
    chats = chat_texts(args.texts)
    pii_texts = [b + v + a for rows in samples.values() for b, a, v in rows]
    rows: list[tuple[str, Callable[[str], str]]] = [
        ("**mean over the forms it covers**", lambda n: f"**{100 * totals[n] / counted[n]:.0f}%**"),
        ("look-alikes changed (false positives)", lambda n: f"{100 * false_positive_rate(maskers[n]):.0f}%"),
        ("texts/s, simulated chat texts", lambda n: f"{per_second(maskers[n], chats):,.0f}"),
        ("texts/s, PII corpus", lambda n: f"{per_second(maskers[n], pii_texts):,.0f}"),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(n) for n in names) + " |")
    print(f"\nturn pairs encoded for the turn-pairs topic, per second: {pair_rates(args.texts)}")
    print(f"\n{args.samples} samples per form, seed {args.seed}; {len(chats)} chat texts; masks {MASKS}")


if __name__ == "__main__":
    main()
