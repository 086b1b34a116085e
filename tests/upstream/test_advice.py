"""LiteLLM's refusals in a Nexus client's terms (issue 14, defect 7)."""

from __future__ import annotations

from nexus.upstream.advice import client_refusal

UNSUPPORTED = (
    "litellm.UnsupportedParamsError: anthropic does not support parameters: ['logit_bias', "
    "'seed'], for model=claude-3-5-sonnet. To drop these, set `litellm.drop_params=True` or for "
    "proxy:\n\n`litellm_settings:\n drop_params: true`\n. \n If you want to use these params "
    "dynamically send allowed_openai_params=['logit_bias'] in your request."
)


def test_unsupported_parameters_are_named_with_the_provider() -> None:
    refusal = client_refusal(UNSUPPORTED, backend="claude", provider="anthropic", model="c")
    assert refusal.param == "logit_bias"
    assert "parameters logit_bias, seed" in refusal.message
    assert "backend 'claude' (anthropic)" in refusal.message
    assert "drop_params" not in refusal.message and "allowed_openai_params" not in refusal.message


def test_other_refusals_keep_the_reason_and_lose_the_litellm_advice() -> None:
    text = (
        "litellm.BadRequestError: Error: Unable to fetch image from URL. The proxy could not "
        "resolve the host; an admin can check the proxy log and `user_url_allowed_hosts` in "
        "litellm_settings. url=http://x/y.png"
    )
    refusal = client_refusal(text, backend="g", provider="gemini", model="m")
    assert refusal.message.startswith("backend 'g' (gemini) rejected the request: Error: Unable")
    assert "litellm" not in refusal.message and "admin" not in refusal.message
    assert refusal.param is None


def test_a_plain_provider_message_is_kept_whole() -> None:
    text = "messages: roles must alternate between user and assistant"
    refusal = client_refusal(text, backend="c", provider="anthropic", model="m")
    assert refusal.message == f"backend 'c' (anthropic) rejected the request: {text}"
