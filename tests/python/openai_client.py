"""Drive `hearth serve` with the official `openai` Python client.

Usage: openai_client.py PLAIN_BASE_URL R1_BASE_URL  (both servers use the API key "k").
PLAIN serves SmolLM2 with its own template; R1 serves the same model through the DeepSeek-R1
template with the thinking opened in the prompt (--reasoning-format deepseek), so a reasoning
budget scripts the split: the budget closes the thinking, then the model answers.
Run by tests/serve.rs (official_openai_python_client); exits non-zero on the first failure.
"""

import sys

import openai
from openai import OpenAI


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def main():
    plain_url, r1_url = sys.argv[1], sys.argv[2]
    c = OpenAI(base_url=plain_url, api_key="k", max_retries=0, timeout=120)

    models = c.models.list()
    check(len(models.data) == 1, "models.list has the served model")
    mid = models.data[0].id
    check(c.models.retrieve(mid).id == mid, "models.retrieve")

    msgs = [{"role": "user", "content": "Say hello in one sentence."}]
    r = c.chat.completions.create(model=mid, messages=msgs, max_tokens=8, temperature=0)
    check(r.object == "chat.completion", "chat completion object")
    check(r.choices[0].finish_reason == "length", "finish_reason length at max_tokens")
    check(r.usage.completion_tokens == 8, "usage.completion_tokens")
    check(r.usage.prompt_tokens > 0, "usage.prompt_tokens")
    check(r.usage.total_tokens == r.usage.prompt_tokens + 8, "usage.total_tokens")
    whole = r.choices[0].message.content
    check(bool(whole), "non-streaming content")

    chunks = list(
        c.chat.completions.create(
            model=mid,
            messages=msgs,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    check(text == whole, "streamed content equals the non-streamed content")
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    check(finishes == ["length"], "one finish_reason in the stream")
    check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8, "stream usage chunk")

    cr = c.completions.create(model=mid, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0)
    base = cr.choices[0].text
    check(cr.object == "text_completion" and len(base) > 0, "completions")
    check(cr.usage.completion_tokens == 12, "completions usage")
    streamed = "".join(
        ch.choices[0].text
        for ch in c.completions.create(model=mid, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stream=True)
        if ch.choices
    )
    check(streamed == base, "streamed completion equals the non-streamed one")

    # A stop string from the middle of the greedy output: the text ends just before it.
    stop = base.strip()[2:5] if len(base.strip()) >= 5 else base.strip()[-1:]
    cut = base.index(stop)
    sr = c.completions.create(model=mid, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[stop])
    check(sr.choices[0].text == base[:cut], f"stop string {stop!r} cuts the text")
    check(sr.choices[0].finish_reason == "stop", "finish_reason stop at a stop string")
    sc = c.chat.completions.create(model=mid, messages=msgs, max_tokens=8, temperature=0, stop=whole[3:6])
    check(sc.choices[0].message.content == whole[: whole.index(whole[3:6])], "chat stop string")

    def sample(seed):
        return c.chat.completions.create(
            model=mid, messages=[{"role": "user", "content": "Tell me a word."}], max_tokens=12,
            temperature=1.0, top_p=0.95, seed=seed,
        ).choices[0].message.content

    a = sample(42)
    check(a == sample(42), "the same seed gives the same text")
    check(any(sample(s) != a for s in (1, 2, 3)), "other seeds give other text")

    lp = c.chat.completions.create(
        model=mid, messages=msgs, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    content = lp.choices[0].logprobs.content
    check(len(content) == 4 and all(len(t.top_logprobs) == 3 for t in content), "chat logprobs")
    check(all(t.logprob <= 0 and t.logprob == t.top_logprobs[0].logprob for t in content), "greedy tokens are the top ones")

    try:
        c.chat.completions.create(model=mid, messages=msgs, temperature=-1)
        check(False, "temperature -1 refused")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and e.body.get("param") == "temperature", "400 names the field")
    try:
        OpenAI(base_url=plain_url, api_key="wrong", max_retries=0).models.list()
        check(False, "wrong key refused")
    except openai.AuthenticationError:
        check(True, "a wrong API key is a 401")

    # The reasoning split on a stream through the DeepSeek-R1 template.
    r1 = OpenAI(base_url=r1_url, api_key="k", max_retries=0, timeout=120)
    r1_id = r1.models.list().data[0].id
    kinds = []
    reasoning, answer = "", ""
    for ch in r1.chat.completions.create(
        model=r1_id,
        messages=[{"role": "user", "content": "What is 2+2?"}],
        max_tokens=40,
        temperature=0,
        stream=True,
        extra_body={"reasoning_budget": 8},
    ):
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        rc = getattr(d, "reasoning_content", None)
        if rc:
            reasoning += rc
            kinds.append("r")
        if d.content:
            answer += d.content
            kinds.append("c")
    check(reasoning.rstrip().endswith("I should answer now."), f"reasoning_content deltas ({reasoning!r})")
    check("</think>" not in answer and "<think>" not in reasoning, "no tags in either channel")
    check(len(answer.strip()) > 0, f"content deltas after the thinking ({answer!r})")
    check("".join(kinds) == "r" * kinds.count("r") + "c" * kinds.count("c"), "reasoning first, then content")
    nr = r1.chat.completions.create(
        model=r1_id, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=40,
        temperature=0, extra_body={"reasoning_budget": 8},
    )
    msg = nr.choices[0].message
    check(msg.reasoning_content == reasoning and msg.content == answer, "non-streaming reasoning_content and content")
    check(nr.usage.completion_tokens_details.reasoning_tokens == 8, "reasoning tokens in usage")
    off = r1.chat.completions.create(
        model=r1_id, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=8,
        temperature=0, extra_body={"think": False},
    )
    check(getattr(off.choices[0].message, "reasoning_content", None) is None, "think: false skips the thinking")

    print("openai client: all checks passed")


if __name__ == "__main__":
    main()
