import pytest

from features.text import char_count, has_digits, has_email, has_question, has_url, word_count
from features.timing import hour_of_day, latency, median, weekday


@pytest.mark.parametrize(
    ("text", "question", "digits", "email", "url"),
    [
        ("", False, False, False, False),
        ("hi!", False, False, False, False),
        ("¿Qué tal?", True, False, False, False),
        ("order 1234", False, True, False, False),
        ("write to ana.b+x@example.co.uk", False, False, True, False),
        ("@handle is not an email", False, False, False, False),
        ("see https://example.com/a?b=1", True, True, False, True),
        ("go to www.landbot.io", False, False, False, True),
    ],
)
def test_text_flags(text, question, digits, email, url):
    assert has_question(text) is question
    assert has_digits(text) is digits
    assert has_email(text) is email
    assert has_url(text) is url


def test_lengths():
    assert char_count("¿Qué tal?") == 9
    assert word_count("  two\nwords ") == 2
    assert word_count("") == 0


def test_timing():
    assert latency(10.0, 12.5) == 2.5
    assert (hour_of_day(1_700_000_000.0), weekday(1_700_000_000.0)) == (22, 1)
    assert (hour_of_day(0.0), weekday(0.0)) == (0, 3)  # 1970-01-01 was a Thursday
    assert median([]) is None
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5
