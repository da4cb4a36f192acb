import pytest

from bot.params import MAX_PROMPT_CHARS, InvalidRequest, parse_params, validate_prompt


def test_defaults_and_a_random_seed_when_none_is_given():
    first, second = parse_params(), parse_params()
    assert first.temperature == 0.8 and first.samples == 1
    assert 0 <= first.seed < 2**63
    assert first.seed != second.seed


def test_strings_from_chat_platforms_are_converted():
    params = parse_params({"temperature": "0", "top_k": "40", "seed": "7", "top_p": "1"})
    assert (params.temperature, params.top_k, params.seed, params.top_p) == (0.0, 40, 7, 1.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"temperature": 2.5}, "temperature must be a number from 0 to 2; got 2.5."),
        ({"temperature": "hot"}, "temperature must be a number from 0 to 2; got 'hot'."),
        ({"top_k": 1001}, "top_k must be an integer from 0 to 1000; got 1001."),
        ({"top_k": 4.5}, "top_k must be an integer from 0 to 1000; got 4.5."),
        ({"top_p": 0}, "top_p must be a number from 0 (exclusive) to 1; got 0."),
        ({"max_new_tokens": 0}, "max_new_tokens must be an integer from 1 to 512; got 0."),
        ({"max_new_tokens": 513}, "max_new_tokens must be an integer from 1 to 512; got 513."),
        ({"repetition_penalty": 0.9}, "repetition_penalty must be a number from 1 to 2; got 0.9."),
        ({"samples": 5}, "samples must be an integer from 1 to 4; got 5."),
        ({"seed": -1}, "seed must be an integer from 0 to 9223372036854775807; got -1."),
        (
            {"seed": 2**63},
            "seed must be an integer from 0 to 9223372036854775807; got 9223372036854775808.",
        ),
        ({"temperature": float("nan")}, "temperature must be a number from 0 to 2; got nan."),
        ({"colour": 1}, "Unknown option colour"),
    ],
)
def test_out_of_range_values_say_what_is_allowed(raw, message):
    with pytest.raises(InvalidRequest) as caught:
        parse_params(raw)
    assert str(caught.value).startswith(message)


def test_prompt_is_trimmed_and_bounded():
    assert validate_prompt("  hello  ") == "hello"
    with pytest.raises(InvalidRequest, match="empty"):
        validate_prompt("   ")
    assert len(validate_prompt("x" * MAX_PROMPT_CHARS)) == MAX_PROMPT_CHARS
    with pytest.raises(InvalidRequest, match="2001 characters long; the limit is 2000"):
        validate_prompt("x" * (MAX_PROMPT_CHARS + 1))
