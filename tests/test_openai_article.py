"""The AsyncOpenAI + asyncio article's examples (shared/seeds/), with only their
``from openai import ...`` line changed to ``from trillm import ...``, run under
``asyncio.run`` against a local fake OpenAI server (``OPENAI_BASE_URL``); and
their trio forms, run with ``trio.run``.
"""

from __future__ import annotations

import pytest

from tests.fake_openai import FakeOpenAI, run_script

# ------------------------------------------------------------------ the article, as written

# The examples of the AsyncOpenAI + asyncio article (shared/seeds/), verbatim.
ARTICLE_GATHER = '''\
import asyncio
from openai import AsyncOpenAI

client = AsyncOpenAI()

async def complete(prompt: str) -> str:
    response = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=256,
    )
    return response.choices[0].message.content

async def main():
    prompts = [
        "Explain gradient descent in two sentences.",
        "What is backpropagation? Keep it brief.",
        "Define a learning rate in machine learning.",
    ]

    # Run all three calls concurrently
    results = await asyncio.gather(*[complete(p) for p in prompts])

    for prompt, result in zip(prompts, results):
        print(f"Q: {prompt}")
        print(f"A: {result}\\n")

asyncio.run(main())
'''

ARTICLE_CHAIN = '''\
import asyncio
from openai import AsyncOpenAI

client = AsyncOpenAI()

async def call_llm(system: str, user: str, max_tokens: int = 512) -> str:
    response = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        max_tokens=max_tokens,
    )
    return response.choices[0].message.content

async def generate_article(topic: str) -> str:
    # Step 1: Generate outline (must complete first)
    outline = await call_llm(
        system="You are a technical writer. Return a numbered list of 3 section titles.",
        user=f"Create an outline for a short article about: {topic}",
        max_tokens=128,
    )
    print(f"Outline:\\n{outline}\\n")

    # Parse sections from the outline
    sections = [
        line.strip().lstrip("0123456789.)")
        for line in outline.strip().split("\\n")
        if line.strip()
    ]

    # Step 2: Expand each section concurrently
    expand_tasks = [
        call_llm(
            system="Write one detailed paragraph for the given section of a technical article.",
            user=f"Article topic: {topic}\\nSection title: {section}\\nWrite the section content.",
            max_tokens=256,
        )
        for section in sections
    ]
    expanded = await asyncio.gather(*expand_tasks)

    # Step 3: Combine into final article
    body = "\\n\\n".join(
        f"## {title}\\n\\n{content}"
        for title, content in zip(sections, expanded)
    )

    final = await call_llm(
        system="You are an editor. Write a two-sentence intro for this article.",
        user=f"Topic: {topic}\\n\\nArticle body:\\n{body}",
        max_tokens=128,
    )

    return f"{final}\\n\\n{body}"

async def main():
    article = await generate_article("async programming in Python")
    print(article)

asyncio.run(main())
'''

ARTICLE_BATCH = '''\
import asyncio
from openai import AsyncOpenAI, RateLimitError

client = AsyncOpenAI()

async def process_prompt(
    semaphore: asyncio.Semaphore,
    prompt: str,
    index: int,
    max_retries: int = 3,
) -> dict:
    for attempt in range(max_retries):
        async with semaphore:
            try:
                response = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=256,
                )
                return {
                    "index": index,
                    "prompt": prompt,
                    "result": response.choices[0].message.content,
                    "error": None,
                }
            except RateLimitError:
                wait_time = 2 ** attempt
                print(f"Rate limited on prompt {index}, retrying in {wait_time}s...")
                await asyncio.sleep(wait_time)
            except Exception as e:
                return {
                    "index": index,
                    "prompt": prompt,
                    "result": None,
                    "error": str(e),
                }

    return {
        "index": index,
        "prompt": prompt,
        "result": None,
        "error": "Max retries exceeded due to rate limiting",
    }

async def batch_process(prompts: list[str], max_concurrent: int = 10) -> list[dict]:
    semaphore = asyncio.Semaphore(max_concurrent)
    tasks = [
        process_prompt(semaphore, prompt, i)
        for i, prompt in enumerate(prompts)
    ]
    return await asyncio.gather(*tasks)

async def main():
    # Generate 50 prompts as an example batch
    prompts = [
        f"Give a one-sentence definition of: concept #{i}"
        for i in range(50)
    ]

    results = await batch_process(prompts, max_concurrent=10)

    succeeded = sum(1 for r in results if r["error"] is None)
    failed = sum(1 for r in results if r["error"] is not None)
    print(f"Completed: {succeeded} succeeded, {failed} failed")

    # Print first 3 results
    for r in results[:3]:
        print(f"  [{r['index']}] {r['result'][:80]}...")

asyncio.run(main())
'''

# The article's short snippets, each with the few lines around it that make it a script.
ARTICLE_SNIPPETS = '''\
import asyncio
from openai import AsyncOpenAI

client = AsyncOpenAI(timeout=30.0)  # 30-second timeout per request

async def complete(prompt: str) -> str:
    response = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    return response.choices[0].message.content

async def main():
    result = await asyncio.wait_for(complete("Your prompt"), timeout=30.0)
    print(f"Success: {result[:50]}...")
    tasks = [complete("first"), complete("second")]
    results = await asyncio.gather(*tasks, return_exceptions=True)

    for r in results:
        if isinstance(r, Exception):
            print(f"Task failed: {r}")
        else:
            print(f"Success: {r[:50]}...")

asyncio.run(main())
'''


def as_trillm(code: str) -> str:
    """*code* with its ``from openai import`` line changed, and nothing else."""
    changed = code.replace("from openai import", "from trillm import")
    diff = [(a, b) for a, b in zip(code.splitlines(), changed.splitlines(), strict=True) if a != b]
    assert len(diff) == 1 and diff[0][0].startswith("from openai import")
    return changed


def test_article_gather_runs_under_asyncio(openai_env: FakeOpenAI,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run_script(as_trillm(ARTICLE_GATHER))
    out = capsys.readouterr().out
    assert "A: An answer about Explain gradient descent in two sentences." in out
    assert out.count("A: An answer about") == 3
    posts = [r for r in openai_env.requests if r.parsed.method == "POST"]
    assert len(posts) == 3
    assert all(r.path == "/v1/chat/completions" and r.params["max_tokens"] == 256 for r in posts)
    assert posts[0].sent_secret("authorization", "Bearer sk-facade-test-key")


def test_article_chain_runs_under_asyncio(openai_env: FakeOpenAI,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_script(as_trillm(ARTICLE_CHAIN))
    out = capsys.readouterr().out
    assert "Outline:\n1. Why async" in out
    assert "##  The event loop\n\nAn answer about Write the section content." in out
    assert len(openai_env.requests) == 5


def test_article_batch_runs_under_asyncio(openai_env: FakeOpenAI,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_script(as_trillm(ARTICLE_BATCH))
    out = capsys.readouterr().out
    # prompt #7 was refused three times: trillm's own retries (2) gave up, the
    # article's loop caught trillm.RateLimitError, slept 1 s and asked again
    assert "Completed: 50 succeeded, 0 failed" in out
    assert out.count("Rate limited on prompt 7, retrying in 1s...") == 1
    assert "[0] An answer about Give a one-sentence definition of: concept #0..." in out


def test_article_snippets_run_under_asyncio(openai_env: FakeOpenAI,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_script(as_trillm(ARTICLE_SNIPPETS))
    assert capsys.readouterr().out.count("Success: An answer about") == 3


# ------------------------------------------------------------------ the same, in trio's form

TRIO_GATHER = '''\
import trio
from trillm import AsyncOpenAI

client = AsyncOpenAI()

async def complete(prompt: str) -> str:
    response = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=256,
    )
    return response.choices[0].message.content

async def main():
    prompts = [
        "Explain gradient descent in two sentences.",
        "What is backpropagation? Keep it brief.",
        "Define a learning rate in machine learning.",
    ]
    results = [None] * len(prompts)

    async def one(i, prompt):
        results[i] = await complete(prompt)

    async with trio.open_nursery() as nursery:  # all three at once
        for i, prompt in enumerate(prompts):
            nursery.start_soon(one, i, prompt)

    for prompt, result in zip(prompts, results):
        print(f"Q: {prompt}")
        print(f"A: {result}\\n")

trio.run(main)
'''

TRIO_CHAIN = '''\
import trio
from trillm import AsyncOpenAI

client = AsyncOpenAI()

async def call_llm(system: str, user: str, max_tokens: int = 512) -> str:
    response = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        max_tokens=max_tokens,
    )
    return response.choices[0].message.content

async def generate_article(topic: str) -> str:
    outline = await call_llm(
        system="You are a technical writer. Return a numbered list of 3 section titles.",
        user=f"Create an outline for a short article about: {topic}",
        max_tokens=128,
    )
    print(f"Outline:\\n{outline}\\n")
    sections = [line.strip().lstrip("0123456789.)")
                for line in outline.strip().split("\\n") if line.strip()]
    expanded = [None] * len(sections)

    async def expand(i, section):
        expanded[i] = await call_llm(
            system="Write one detailed paragraph for the given section of a technical article.",
            user=f"Article topic: {topic}\\nSection title: {section}\\nWrite the section content.",
            max_tokens=256,
        )

    async with trio.open_nursery() as nursery:  # every section at once
        for i, section in enumerate(sections):
            nursery.start_soon(expand, i, section)

    body = "\\n\\n".join(f"## {t}\\n\\n{c}" for t, c in zip(sections, expanded))
    final = await call_llm(
        system="You are an editor. Write a two-sentence intro for this article.",
        user=f"Topic: {topic}\\n\\nArticle body:\\n{body}",
        max_tokens=128,
    )
    return f"{final}\\n\\n{body}"

async def main():
    async with client:  # closes the connections when done
        print(await generate_article("async programming in Python"))

trio.run(main)
'''

TRIO_BATCH = '''\
import trio
from trillm import AsyncOpenAI, RateLimitError

client = AsyncOpenAI(max_concurrency=10)  # at most 10 requests on the wire, for the client

async def process_prompt(prompt: str, index: int, max_retries: int = 3) -> dict:
    for attempt in range(max_retries):
        try:
            response = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": prompt}],
                max_tokens=256,
            )
            return {"index": index, "result": response.choices[0].message.content,
                    "error": None}
        except RateLimitError:
            wait_time = 2 ** attempt
            print(f"Rate limited on prompt {index}, retrying in {wait_time}s...")
            await trio.sleep(wait_time)
        except Exception as e:
            return {"index": index, "result": None, "error": str(e)}
    return {"index": index, "result": None,
            "error": "Max retries exceeded due to rate limiting"}

async def main():
    prompts = [f"Give a one-sentence definition of: concept #{i}" for i in range(50)]
    results = [None] * len(prompts)

    async def one(i, prompt):
        results[i] = await process_prompt(prompt, i)

    async with trio.open_nursery() as nursery:
        for i, prompt in enumerate(prompts):
            nursery.start_soon(one, i, prompt)

    succeeded = sum(1 for r in results if r["error"] is None)
    failed = sum(1 for r in results if r["error"] is not None)
    print(f"Completed: {succeeded} succeeded, {failed} failed")
    for r in results[:3]:
        print(f"  [{r['index']}] {r['result'][:80]}...")

trio.run(main)
'''


def test_article_gather_trio_form(openai_env: FakeOpenAI,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    run_script(TRIO_GATHER)
    out = capsys.readouterr().out
    assert out.count("A: An answer about") == 3
    assert "A: An answer about What is backpropagation? Keep it brief." in out


def test_article_chain_trio_form(openai_env: FakeOpenAI,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_script(TRIO_CHAIN)
    out = capsys.readouterr().out
    assert "Outline:\n1. Why async" in out and "##  Structured concurrency" in out
    assert len(openai_env.requests) == 5


def test_article_batch_trio_form(openai_env: FakeOpenAI,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_script(TRIO_BATCH)
    out = capsys.readouterr().out
    assert "Completed: 50 succeeded, 0 failed" in out
    assert out.count("Rate limited on prompt 7, retrying in 1s...") == 1
