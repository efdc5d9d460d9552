"""The demo backend: answers with no configuration, no network and no model.

A fresh install answers with it, so every game can be tried before anyone sets
up a real model. Replies are built from sentence templates, seeded from the
prompt: the same conversation always gets the same answer, which also makes it
a dependable backend for tests.

Models:

- `demo`: a short, helpful-sounding answer that says it comes from the demo
  model ("(demo model) ...");
- `demo-storyteller`: second-person fantasy narration for a Dungeon Master
  game, ending with "What do you do?".

Any other name that starts with `demo` is served with the plain flavour (or the
storyteller one if the name contains "story").

Token counts are exact under one simple tokenizer, used for the prompt and the
reply alike: one token per word (letters and digits, with inner apostrophes)
and one per punctuation mark. The prompt is the system text plus every
message's content (and the name and JSON arguments of its tool calls); a tool
call in the reply counts its name and JSON arguments the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from inference.backends.base import (
    Backend,
    ChatRequest,
    Event,
    ModelInfo,
    Stop,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallEvent,
    Usage,
)

PLAIN_MODEL = "demo"
STORY_MODEL = "demo-storyteller"

TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
# A token with the whitespace before it: the pieces of a text join back into it.
PIECE = re.compile(r"\s*(?:\w+(?:['’]\w+)*|[^\w\s])")


def count_tokens(text: str) -> int:
    """Tokens of `text` under the demo tokenizer (see the module docstring)."""
    return len(TOKEN.findall(text))


def pieces(text: str) -> list[str]:
    return PIECE.findall(text)


# --- the storyteller's word hoard ----------------------------------------------------------

PLACES = (
    "a ruined watchtower",
    "the mouth of a flooded cave",
    "a moss-covered shrine",
    "the crossroads below Ravenhold",
    "a market square empty of people",
    "the broken gate of a sunken library",
    "an abandoned mill beside a black river",
    "the edge of the Whispering Wood",
    "a torchlit hall of broken pillars",
    "a shipwreck on a grey beach",
    "a frozen pass between two peaks",
    "a wine cellar sealed for a century",
)
LIGHTS = (
    "pale moonlight",
    "the last red light of evening",
    "a lantern's trembling glow",
    "cold blue witchfire",
    "thin grey dawn light",
    "the flicker of a dying campfire",
)
SOUNDS = (
    "the slow drip of water",
    "distant drums",
    "a crow's harsh call",
    "chains rattling far below",
    "a low, patient humming",
    "footsteps that stop when you stop",
    "wind moaning through cracked stone",
)
SMELLS = (
    "wet earth",
    "smoke and iron",
    "sweet rot",
    "old parchment",
    "pine resin and rain",
    "burnt sugar",
)
CREATURES = (
    "a hooded figure",
    "a silver-eyed wolf",
    "a goblin clutching a stolen lantern",
    "a knight in rust-red armour",
    "a small dragon no bigger than a cat",
    "an old woman with a basket of bones",
    "a pale child who does not blink",
    "a troll wearing a crown of antlers",
)
CREATURE_DEEDS = (
    "watches you from the shadows",
    "steps into the light and raises a hand",
    "is arguing with its own reflection",
    "freezes, then bolts for the nearest door",
    "bows low and speaks your name",
    "blocks the way forward, smiling",
    "is digging frantically at the floor",
)
ITEMS = (
    "a brass key etched with runes",
    "a map drawn in faded ink",
    "a sealed letter bearing a royal crest",
    "a sword humming faintly in its sheath",
    "a cracked mirror that shows another room",
    "a pouch of coins still warm to the touch",
    "a lantern that burns without oil",
)
ITEM_PLACES = (
    "half-buried in the dust",
    "on a stone altar",
    "in the hands of a fallen statue",
    "beneath a loose floorboard",
    "on a rusty hook by the door",
    "at the bottom of a shallow pool",
)

SCENES = (
    "You stand at {place}, bathed in {light}.",
    "You arrive at {place} as {light} fades around you.",
    "Before you lies {place}, lit only by {light}.",
    "The trail ends at {place}, and {light} shows the way in.",
    "You press on until you reach {place}.",
    "{Light} falls across {place} as you step closer.",
)
SENSES = (
    "The air smells of {smell}, and somewhere you hear {sound}.",
    "You catch the scent of {smell}.",
    "Over the silence rises {sound}.",
    "Your skin prickles at {sound}.",
    "Every breath tastes of {smell}.",
    "Far off, you can make out {sound}.",
)
ENCOUNTERS = (
    "Ahead, {creature} {deed}.",
    "Without warning, {creature} {deed}.",
    "You are not alone: {creature} {deed}.",
    "At the edge of your sight, {creature} {deed}.",
    "Closer than you would like, {creature} {deed}.",
)
DISCOVERIES = (
    "You notice {item} {item_place}.",
    "Your gaze falls on {item} {item_place}.",
    "There is {item} {item_place}, as if someone left it for you.",
    "Something catches the light: {item} {item_place}.",
    "Glinting {item_place}, {item} waits to be claimed.",
)
OMENS = (
    "The ground trembles, just once.",
    "A cold wind snuffs out the nearest flame.",
    "Somewhere behind you, a door slams shut.",
    "The shadows seem to lean a little closer.",
    "For a heartbeat, everything goes utterly still.",
    "A bell tolls once in the distance, though no bell tower stands near.",
)
TOOL_VERDICTS = (
    "You consult {tool}, and the answer comes back: {result}.",
    "Fate answers through {tool}: {result}.",
    "The verdict of {tool} is {result}.",
)

# --- the plain model's phrases ------------------------------------------------------------------

OPENERS = (
    "Good question about {topic}.",
    "Here is a quick take on {topic}.",
    "Happy to help with {topic}.",
    "Let's think about {topic} together.",
    "{Topic} is a fine thing to ask about.",
)
ADVICE = (
    "Start with the simplest version that could work, then improve it one step at a time.",
    "It often helps to write down what you already know about {topic} before looking further.",
    "A small example usually teaches more than a long explanation.",
    "Try breaking the problem into pieces you can check on their own.",
    "If something surprises you, that is usually the most interesting place to look.",
    "Keep notes as you go, so each step is easier than the last.",
    "Ask what would change your mind, and then look for exactly that.",
    "There is rarely one right answer, but there are plenty of good ones.",
    "When in doubt, play-test it with a friend and watch what they do.",
    "Good games, like good answers, reward curiosity.",
)
CLOSERS = (
    "I am only the demo model, so my answers are friendly rather than deep.",
    "This reply comes from the built-in demo model; a real model will say much more.",
    "Ask your administrator to connect a real model for smarter replies.",
    "Have fun, and ask again any time.",
)
TOOL_RESULTS = (
    "The {tool} tool answered: {result}.",
    "Here is what {tool} came back with: {result}.",
)

# Words too common to be what a question is about.
_COMMON_WORDS = (
    "about above after again also been before being below could does doing from have "
    "having here into just like make more most much must only other over please same "
    "should some such tell than that their them then there these they this those "
    "through under very want what when where which while will with would your yours"
)
STOPWORDS = frozenset(_COMMON_WORDS.split())
SECOND_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "am": "are",
    "i'm": "you're",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "we": "you",
    "us": "you",
    "our": "your",
}


class DemoBackend(Backend):
    name = "demo"
    default_model = PLAIN_MODEL

    def __init__(self, *, tokens_per_second: float | None = None) -> None:
        rate = (
            settings.INFERENCE_DEMO_TOKENS_PER_S if tokens_per_second is None else tokens_per_second
        )
        # 0 (or less): as fast as the caller reads.
        self.tokens_per_second = max(0.0, rate)

    async def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(id=PLAIN_MODEL, backend=self.name, display_name="Demo"),
            ModelInfo(id=STORY_MODEL, backend=self.name, display_name="Demo storyteller"),
        ]

    async def serves(self, model: str) -> bool:
        return model.startswith("demo")

    async def health(self) -> bool:
        return True

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        rng = random.Random(_seed(request))
        storyteller = "story" in request.model
        call = _tool_call(request, rng)
        if call is not None:
            text = f"(demo model) Using {call.name}." if not storyteller else f"Using {call.name}."
        elif storyteller:
            text = _narrate(request, rng)
        else:
            text = _answer(request, rng)

        limit = max(0, request.max_tokens)
        parts = pieces(text)
        reason, matched = "end_turn", None
        if len(parts) > limit:
            parts, reason, call = parts[:limit], "max_tokens", None
        reply = "".join(parts)
        hits = [(reply.find(stop), stop) for stop in request.stop if stop and stop in reply]
        if hits:
            at, matched = min(hits)
            reply, reason, call = reply[:at], "stop_sequence", None
            parts = pieces(reply)
            # Pieces leave out trailing whitespace; the text before a stop
            # sequence is sent exactly as it was.
            rest = reply[len("".join(parts)) :]
            if rest:
                parts.append(rest)

        started = time.monotonic()
        for index, part in enumerate(parts):
            if self.tokens_per_second:
                delay = started + index / self.tokens_per_second - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield TextDelta(part)
        completion = count_tokens(reply)
        if call is not None:
            yield ToolCallEvent(call)
            completion += count_tokens(call.name) + count_tokens(call.arguments_json)
            reason = "tool_use"
        yield Usage(prompt_tokens=count_tokens(_prompt_text(request)), completion_tokens=completion)
        yield Stop(reason, matched)


# --- generation ------------------------------------------------------------------------------


def _prompt_text(request: ChatRequest) -> str:
    texts = [request.system or ""]
    for message in request.messages:
        texts.append(message.content)
        texts.extend(f"{call.name} {call.arguments_json}" for call in message.tool_calls)
    return "\n".join(texts)


def _seed(request: ChatRequest) -> int:
    digest = hashlib.sha256(f"{request.model}\n{_prompt_text(request)}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _last_user_text(request: ChatRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return ""


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fill(template: str, values: dict[str, str]) -> str:
    values = {**values, **{_capitalize(k): _capitalize(v) for k, v in values.items()}}
    return template.format(**values)


def _topic(request: ChatRequest) -> str:
    words = re.findall(r"[A-Za-z][A-Za-z'-]{3,}", _last_user_text(request))
    content = [w.lower() for w in words if w.lower() not in STOPWORDS]
    if not content:
        return "your game"
    return max(content, key=len)


def _tool_result(request: ChatRequest) -> tuple[str, str] | None:
    """The tool and its result, when the conversation ends with one."""
    if not request.messages or request.messages[-1].role != "tool":
        return None
    last = request.messages[-1]
    name = last.tool_name
    if not name:
        for message in reversed(request.messages):
            for call in message.tool_calls:
                if call.id == last.tool_call_id:
                    name = call.name
    words = last.content.split()
    result = " ".join(words[:20]) + (" ..." if len(words) > 20 else "")
    return name or "the tool", result.rstrip(".") or "nothing"


def _answer(request: ChatRequest, rng: random.Random) -> str:
    topic = _topic(request)
    values = {"topic": topic}
    sentences: list[str] = []
    tool_result = _tool_result(request)
    if tool_result is not None:
        tool, result = tool_result
        sentences.append(_fill(rng.choice(TOOL_RESULTS), {"tool": tool, "result": result}))
    else:
        sentences.append(_fill(rng.choice(OPENERS), values))
    sentences += [_fill(advice, values) for advice in rng.sample(ADVICE, 2)]
    sentences.append(rng.choice(CLOSERS))
    return "(demo model) " + " ".join(sentences)


def _player_action(text: str) -> str | None:
    """ "I open the door" becomes "You open the door." (the first sentence only)."""
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].strip()
    sentence = sentence.rstrip(".!?")
    words = sentence.split()
    if not words or words[0].lower() not in ("i", "i'm", "i've", "i'll", "we") or len(words) > 16:
        return None
    swapped = re.sub(r"[\w']+", lambda m: SECOND_PERSON.get(m.group().lower(), m.group()), sentence)
    return _capitalize(swapped) + "."


def _narrate(request: ChatRequest, rng: random.Random) -> str:
    values = {
        "place": rng.choice(PLACES),
        "light": rng.choice(LIGHTS),
        "sound": rng.choice(SOUNDS),
        "smell": rng.choice(SMELLS),
        "creature": rng.choice(CREATURES),
        "deed": rng.choice(CREATURE_DEEDS),
        "item": rng.choice(ITEMS),
        "item_place": rng.choice(ITEM_PLACES),
    }
    sentences: list[str] = []
    tool_result = _tool_result(request)
    if tool_result is not None:
        tool, result = tool_result
        sentences.append(_fill(rng.choice(TOOL_VERDICTS), {"tool": tool, "result": result}))
    else:
        action = _player_action(_last_user_text(request))
        if action:
            sentences.append(action)
        sentences.append(_fill(rng.choice(SCENES), values))
    sentences.append(_fill(rng.choice(SENSES), values))
    twists = [rng.choice(ENCOUNTERS), rng.choice(DISCOVERIES)]
    rng.shuffle(twists)
    sentences += [_fill(twist, values) for twist in twists[: rng.choice((1, 2))]]
    if rng.random() < 0.5:
        sentences.append(rng.choice(OMENS))
    sentences.append("What do you do?")
    return " ".join(sentences)


# --- tools -----------------------------------------------------------------------------------


def _tool_call(request: ChatRequest, rng: random.Random) -> ToolCall | None:
    """A call when the player's latest turn names a tool (or tool_choice demands one)."""
    if not request.tools or request.tool_choice == "none":
        return None
    if not request.messages or request.messages[-1].role != "user":
        return None  # a tool result was just given: answer it instead
    said = request.messages[-1].content.lower()
    chosen: Tool | None = None
    for tool in request.tools:
        if request.tool_choice == tool.name:
            chosen = tool
            break
        if chosen is None and (
            tool.name.lower() in said or tool.name.replace("_", " ").lower() in said
        ):
            chosen = tool
    if chosen is None and request.tool_choice == "any":
        chosen = request.tools[0]
    if chosen is None:
        return None
    call_id = f"call_demo_{rng.getrandbits(64):016x}"
    return ToolCall(call_id, chosen.name, _example_arguments(chosen.parameters))


def _example_arguments(parameters: dict[str, Any]) -> dict[str, Any]:
    properties = parameters.get("properties") or {}
    arguments: dict[str, Any] = {}
    for name in parameters.get("required") or []:
        schema = properties.get(name) or {}
        if "default" in schema:
            arguments[name] = schema["default"]
        elif schema.get("enum"):
            arguments[name] = schema["enum"][0]
        elif "minimum" in schema:
            arguments[name] = schema["minimum"]
        else:
            kind = schema.get("type", "string")
            if isinstance(kind, list):
                kind = next((k for k in kind if k != "null"), "string")
            arguments[name] = {
                "integer": 1,
                "number": 1,
                "boolean": True,
                "array": [],
                "object": {},
                "null": None,
            }.get(kind, "demo")
    return arguments
