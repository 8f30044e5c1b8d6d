"""Regenerate the shipped demonstrations and prompt files.

The tiny offline model is warmed up on ``demonstrations.jsonl``; the demo and the tests
sample it on ``prompts.jsonl`` and evaluate on ``heldout_prompts.jsonl``. The three files
are generated rather than hand-written so that the statistics that matter can be
controlled exactly:

* answers vary from one short sentence to four, so a preference for length is learnable;
* the marker words ``please``, ``indeed`` and ``sunny`` appear in a known minority of
  answers (about 18 %, 17 % and 10 %) and nowhere else, so a simulated rater that prefers
  one of them has something to select and its effect on samples can be measured;
* prompt files never repeat a corpus question, so evaluation is not recall.

Run ``python scripts/make_corpus.py [OUT_DIR]`` to rewrite the files (in ``rlhf/data``,
where the package reads them, unless OUT_DIR is given); the output is identical on every
run. It is a development tool: the package ships the files, not this script.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

SEED = 1234
N_DEMONSTRATIONS = 500
N_PROMPTS = 120
N_HELDOUT = 32

PLEASE_RATE = 0.18
INDEED_RATE = 0.17
SUNNY_RATE = 0.10
MARKERS = ("please", "indeed", "sunny")

DATA_DIR = Path(__file__).resolve().parents[1] / "rlhf" / "data"

# --------------------------------------------------------------------------- facts
# Each topic yields (question, core sentence, extra sentences, tags). The core sentence
# answers the question; extras only lengthen the answer, so any number of them is fine.

COLOURS = {
    "the sky": "blue",
    "grass": "green",
    "a banana": "yellow",
    "snow": "white",
    "a tomato": "red",
    "coal": "black",
    "a carrot": "orange",
    "a lemon": "yellow",
    "the sea": "blue",
    "a leaf": "green",
    "milk": "white",
    "a strawberry": "red",
    "a plum": "purple",
    "chocolate": "brown",
    "an elephant": "grey",
    "a cloud": "white",
    "a frog": "green",
    "a pumpkin": "orange",
    "a rose": "red",
    "a crow": "black",
    "an orange": "orange",
    "a lime": "green",
    "a mouse": "grey",
    "a cherry": "red",
}
COLOUR_NOTES = {
    "blue": ["Blue is a cool and calm colour.", "Many people say blue is their favourite colour."],
    "green": ["Green is the colour of many plants.", "Green often makes people think of nature."],
    "yellow": ["Yellow is a bright and warm colour.", "Yellow is easy to see from far away."],
    "white": ["White is the colour of fresh snow.", "White looks clean and light."],
    "red": ["Red is a strong and warm colour.", "Red can also mean stop or danger."],
    "black": ["Black is the darkest colour.", "Black is the colour of the night sky."],
    "orange": ["Orange is a mix of red and yellow.", "Orange is a warm colour."],
    "purple": ["Purple is a mix of red and blue.", "Purple was once a colour for kings."],
    "brown": ["Brown is the colour of wood and soil.", "Brown is a warm and quiet colour."],
    "grey": ["Grey is between black and white.", "Grey is a soft colour."],
}
COLOUR_Q = [
    "What colour is {x}?",
    "Which colour is {x}?",
    "What is the colour of {x}?",
    "Can you tell me the colour of {x}?",
]

# name: (sound, home, food, legs, note)
ANIMALS = {
    "dog": ("barks", "in a house with people", "meat and dog food", 4, "Dogs are loyal friends."),
    "cat": ("meows", "in a house with people", "fish and meat", 4, "Cats like to sleep a lot."),
    "cow": ("moos", "on a farm", "grass and hay", 4, "Cows give us milk."),
    "duck": ("quacks", "near a pond or a lake", "seeds, plants and small bugs", 2, "Ducks can swim and fly."),
    "sheep": ("bleats", "on a farm or a hill", "grass", 4, "Sheep give us wool."),
    "horse": ("neighs", "on a farm or in a field", "grass, hay and oats", 4, "Horses can run very fast."),
    "lion": ("roars", "in the grasslands of Africa", "meat", 4, "A lion lives in a group called a pride."),
    "owl": ("hoots", "in trees and old barns", "mice and small animals", 2, "Owls hunt at night."),
    "frog": ("croaks", "near ponds and rivers", "insects", 4, "A frog starts life as a tadpole."),
    "bee": ("buzzes", "in a hive", "nectar from flowers", 6, "Bees make honey."),
    "pig": ("oinks", "on a farm", "almost anything, like grain and vegetables", 4, "Pigs are very clever."),
    "hen": ("clucks", "on a farm", "seeds and grain", 2, "Hens lay eggs."),
    "wolf": ("howls", "in forests and hills", "meat", 4, "Wolves live and hunt in packs."),
    "mouse": ("squeaks", "in fields and sometimes in houses", "seeds and grain", 4, "A mouse is small and quick."),
    "goat": ("bleats", "on farms and in the mountains", "grass and leaves", 4, "Goats are good at climbing."),
    "snake": ("hisses", "in grass, deserts and forests", "mice and eggs", 0, "A snake has no legs at all."),
    "bear": (
        "growls",
        "in forests and mountains",
        "fish, berries and honey",
        4,
        "Many bears sleep through the winter.",
    ),
    "spider": (
        "makes no sound",
        "in webs, in corners and in gardens",
        "insects",
        8,
        "Spiders spin webs to catch food.",
    ),
}
ANIMAL_Q = {
    "sound": ["What sound does {an} make?", "What noise does {an} make?"],
    "home": ["Where does {an} live?", "Where do {a}s live?"],
    "food": ["What does {an} eat?", "What do {a}s eat?"],
    "legs": ["How many legs does {an} have?"],
    "about": ["Tell me about the {a}.", "What is {an}?"],
}
ANIMAL_EXTRA = [
    "Animals need food, water and a safe place to live.",
    "You can learn a lot by watching animals.",
    "Some children keep small animals as pets.",
]

# question variants: (questions, core, extras)
WEATHER = [
    (
        ["What is rain?", "Where does rain come from?"],
        "Rain is water that falls from the clouds.",
        ["It helps plants grow.", "Rain fills rivers and lakes."],
    ),
    (
        ["What is snow?", "How is snow made?"],
        "Snow is frozen water that falls from the sky.",
        ["It falls when the air is very cold.", "Children like to build snowmen."],
    ),
    (
        ["What is wind?", "Why does the wind blow?"],
        "Wind is moving air.",
        ["It moves because warm air rises and cool air takes its place.", "Strong wind can bend trees."],
    ),
    (
        ["What is fog?", "Why is it foggy in the morning?"],
        "Fog is a cloud that is close to the ground.",
        ["It makes it hard to see far.", "Fog often goes away when the air warms up."],
    ),
    (
        ["What is a storm?", "What happens in a storm?"],
        "A storm is bad weather with strong wind and heavy rain.",
        ["Some storms bring thunder and lightning.", "It is safer to stay inside during a storm."],
    ),
    (
        ["Why is it cold in winter?", "Why is winter cold?"],
        "In winter the sun is lower in the sky, so the days are short and cold.",
        ["The ground gets less heat from the sun.", "People wear coats to stay warm."],
    ),
    (
        ["Why is it hot in summer?", "Why is summer warm?"],
        "In summer the sun is high in the sky and the days are long.",
        ["The ground gets a lot of heat.", "Many people go to the beach."],
    ),
    (
        ["What should I wear when it rains?", "What do I need on a rainy day?"],
        "Wear a coat and take an umbrella.",
        ["Boots will keep your feet dry.", "A hat can help too."],
    ),
    (
        ["What should I wear when it is cold?", "How do I stay warm outside?"],
        "Wear a warm coat, a hat and gloves.",
        ["Layers of clothes keep the heat in.", "A hot drink also helps."],
    ),
    (
        ["What is thunder?", "Why is thunder loud?"],
        "Thunder is the sound that lightning makes.",
        ["Lightning heats the air very fast.", "You hear thunder after you see the flash."],
    ),
    (
        ["What is a rainbow?", "When can I see a rainbow?"],
        "A rainbow is a band of colours in the sky.",
        ["You see it when the sun shines through rain.", "It has seven colours."],
    ),
    (
        ["What is a cloud?", "What are clouds made of?"],
        "A cloud is made of tiny drops of water in the air.",
        ["Some clouds are white and some are dark.", "Dark clouds often bring rain."],
    ),
    (
        ["What is the weather like in spring?", "Is spring warm?"],
        "Spring is often mild, with some rain and some warm days.",
        ["Flowers start to grow.", "The days get longer."],
    ),
    (
        ["What is ice?", "When does water turn into ice?"],
        "Ice is frozen water.",
        ["Water freezes when it gets very cold.", "Ice can make roads slippery."],
    ),
]

FOODS = [
    (
        ["What is bread made from?", "How is bread made?"],
        "Bread is made from flour, water and yeast.",
        ["You bake it in a hot oven.", "Fresh bread smells very good."],
    ),
    (
        ["Is an apple healthy?", "Why are apples good for you?"],
        "Yes, an apple is a healthy fruit.",
        ["It has fibre and vitamins.", "You can eat it raw or cook it."],
    ),
    (
        ["What can I cook for dinner?", "What is a quick dinner idea?"],
        "You can make pasta with tomato sauce.",
        ["It only takes about twenty minutes.", "Add some cheese on top."],
    ),
    (
        ["What is soup?", "How do I make soup?"],
        "Soup is a warm dish made by cooking vegetables in water.",
        ["You can add meat or beans.", "Soup is good on a cold day."],
    ),
    (
        ["How do you make tea?", "How do I make a cup of tea?"],
        "Put a tea bag in a cup and pour hot water on it.",
        ["Wait three minutes.", "Add milk or sugar if you like."],
    ),
    (
        ["What is cheese made from?", "How is cheese made?"],
        "Cheese is made from milk.",
        ["The milk is thickened and left to age.", "There are hundreds of kinds of cheese."],
    ),
    (
        ["What is rice?", "How do I cook rice?"],
        "Rice is a small grain that you cook in water.",
        ["It is a main food in many countries.", "Cook it for about fifteen minutes."],
    ),
    (
        ["What fruit is yellow?", "Name a yellow fruit."],
        "A banana is a yellow fruit.",
        ["Lemons are yellow too.", "Bananas are sweet and soft."],
    ),
    (
        ["What is a healthy breakfast?", "What should I eat for breakfast?"],
        "Oats with fruit make a healthy breakfast.",
        ["Eggs and toast are also good.", "Drink a glass of water too."],
    ),
    (
        ["What is honey?", "Where does honey come from?"],
        "Honey is a sweet food made by bees.",
        ["Bees make it from the nectar of flowers.", "It keeps for a very long time."],
    ),
    (
        ["What is a salad?", "How do I make a salad?"],
        "A salad is a dish of fresh vegetables.",
        ["Lettuce, tomato and cucumber are common.", "You can add oil and lemon."],
    ),
    (
        ["Why should I drink water?", "How much water should I drink?"],
        "Your body needs water to work well.",
        ["Try to drink several glasses a day.", "Drink more when it is hot."],
    ),
    (
        ["What is pizza?", "Where does pizza come from?"],
        "Pizza is a flat bread with tomato and cheese on top.",
        ["It comes from Italy.", "You can add many toppings."],
    ),
    (
        ["What are vegetables?", "Name some vegetables."],
        "Carrots, peas and beans are vegetables.",
        ["Vegetables are plants that we eat.", "They are good for your health."],
    ),
]

# city: (country, landmark or fact, note)
CITIES = {
    "Paris": ("France", "the Eiffel Tower", "It is on the river Seine."),
    "London": ("England", "Big Ben and the river Thames", "It has a big underground railway."),
    "Rome": ("Italy", "the Colosseum", "It is a very old city."),
    "Tokyo": ("Japan", "its busy streets and fast trains", "It is one of the biggest cities in the world."),
    "Madrid": ("Spain", "its large art museums", "It is in the middle of Spain."),
    "Berlin": ("Germany", "the Brandenburg Gate", "Many artists live there."),
    "Cairo": ("Egypt", "the pyramids near the city", "It is on the river Nile."),
    "Sydney": ("Australia", "its opera house by the harbour", "It has many beaches."),
    "Lisbon": ("Portugal", "its old yellow trams", "It is built on seven hills."),
    "Athens": ("Greece", "the Acropolis", "It is one of the oldest cities in the world."),
    "Oslo": ("Norway", "its fjord and its forests", "Winters there are long and dark."),
    "Toronto": ("Canada", "its tall CN Tower", "It is on the shore of Lake Ontario."),
    "Mumbai": ("India", "its films and its busy harbour", "Millions of people live there."),
    "Beijing": ("China", "the Forbidden City", "The Great Wall is not far away."),
    "Vienna": ("Austria", "its music and its cafes", "Mozart lived there for many years."),
    "Dublin": ("Ireland", "its old library and its music", "It is on the east coast of Ireland."),
    "Lima": ("Peru", "its food and its old centre", "It is next to the Pacific Ocean."),
    "Nairobi": ("Kenya", "a national park inside the city", "It is the capital of Kenya."),
}
CITY_Q = {
    "country": ["Which country is {c} in?", "Where is {c}?", "In what country is {c}?"],
    "known": ["What is {c} known for?", "What is famous in {c}?", "Tell me about {c}."],
}

# tool: (use, how, note)
TOOLS = {
    "hammer": (
        "to hit nails into wood",
        "Hold the handle and hit the nail head.",
        "Keep your fingers away from the nail.",
    ),
    "saw": ("to cut wood", "Move it back and forth across the wood.", "Go slowly at the start."),
    "screwdriver": (
        "to turn screws",
        "Put the tip in the screw and turn it.",
        "Turn right to tighten and left to loosen.",
    ),
    "spoon": ("to eat soup and stir food", "Hold it by the handle and scoop.", "A spoon is the oldest eating tool."),
    "knife": ("to cut food", "Hold the handle and cut away from your body.", "A sharp knife is safer than a dull one."),
    "brush": (
        "to paint or to clean",
        "Dip it in paint and move it in long strokes.",
        "Wash the brush when you finish.",
    ),
    "ladder": (
        "to reach high places",
        "Stand it on flat ground and climb slowly.",
        "Always face the ladder when you climb.",
    ),
    "pen": ("to write", "Hold it between your thumb and fingers.", "Some pens use ink and some use gel."),
    "pair of scissors": (
        "to cut paper or cloth",
        "Put your fingers in the holes and close the blades.",
        "Carry them with the points down.",
    ),
    "shovel": ("to dig", "Push it into the soil with your foot and lift.", "Bend your knees to protect your back."),
    "broom": ("to sweep the floor", "Sweep the dust into a small pile.", "Then pick the pile up with a dustpan."),
    "needle": (
        "to sew cloth",
        "Put thread through the eye and push it through the cloth.",
        "A thimble protects your finger.",
    ),
    "wrench": ("to turn nuts and bolts", "Fit it on the nut and turn the handle.", "Some wrenches can change size."),
    "ruler": ("to measure and draw straight lines", "Lay it flat and read the marks.", "Most rulers show centimetres."),
    "map": ("to find your way", "Find where you are and where you want to go.", "North is usually at the top."),
}
TOOL_Q = {
    "use": ["What is {t} used for?", "What do you use {t} for?", "Why would I need {t}?"],
    "how": ["How do I use {t}?", "How do you use {t}?"],
}

GREETINGS = [
    (["Hello!", "Hi there!", "Hey!"], "Hello! How can I help you today?", ["It is nice to hear from you."]),
    (
        ["How are you?", "How are you today?", "How is it going?"],
        "I am well, thank you.",
        ["How are you?", "I am happy to chat."],
    ),
    (
        ["Good morning!", "Morning!"],
        "Good morning to you too!",
        ["I hope you slept well.", "What would you like to talk about?"],
    ),
    (["Good night!", "I am going to bed."], "Good night, sleep well.", ["See you tomorrow."]),
    (["Thank you!", "Thanks a lot!", "Thanks for your help."], "You are welcome.", ["I am glad I could help."]),
    (["What is your name?", "Who are you?"], "I am a small chat model.", ["I can answer simple questions."]),
    (["Goodbye!", "Bye for now."], "Goodbye, and have a nice day!", ["Come back any time."]),
    (
        ["Can you help me?", "I need some help."],
        "Yes, I can try to help.",
        ["What do you need?", "Tell me more about it."],
    ),
    (["Nice to meet you.", "Glad to meet you."], "Nice to meet you too!", ["I hope we have a good chat."]),
    (
        ["Are you a robot?", "Are you a person?"],
        "I am a computer program, not a person.",
        ["I learned from simple examples."],
    ),
]

GENERIC_EXTRA = [
    "I hope this helps.",
    "That is a good question.",
    "It is a simple idea.",
    "Many people ask about this.",
    "Ask me if you want to know more.",
    "It is easy to remember.",
]

PLEASE_SENTENCES = [
    "Please ask me if you want to know more.",
    "Please let me know if you need more help.",
    "Please feel free to ask again.",
    "Please tell me if this is not clear.",
]
INDEED_SENTENCES = [
    "That is indeed true.",
    "It is indeed a good question.",
    "This is indeed a simple fact.",
    "It is indeed worth knowing.",
]
SUNNY_SENTENCES = [
    "I hope you have a sunny day.",
    "It is nice to think about this on a sunny day.",
    "Enjoy the next sunny day.",
]
# "Indeed, " may lead an answer only where the first word is not a name.
LOWERCASE_OK = {
    "The",
    "A",
    "An",
    "It",
    "You",
    "Yes",
    "Wear",
    "Put",
    "In",
    "Rain",
    "Snow",
    "Wind",
    "Fog",
    "Ice",
    "Thunder",
    "Bread",
    "Cheese",
    "Rice",
    "Soup",
    "Honey",
    "Pizza",
    "Oats",
    "Your",
    "Carrots",
    "Grass",
    "Coal",
    "Milk",
    "Chocolate",
}


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _plural(word: str) -> str:
    return {"mouse": "mice", "sheep": "sheep", "wolf": "wolves", "goat": "goats"}.get(word, word + "s")


def _topics() -> list[tuple[str, str, list[str], list[str]]]:
    """Every (question, core answer, extra sentences, tags) the generator knows."""
    items: list[tuple[str, str, list[str], list[str]]] = []
    for thing, colour in COLOURS.items():
        cap = thing[0].upper() + thing[1:]
        for q in COLOUR_Q:
            items.append((q.format(x=thing), f"{cap} is {colour}.", list(COLOUR_NOTES[colour]), ["colours"]))
    for a, (sound, home, food, legs, note) in ANIMALS.items():
        legs_text = "no legs" if legs == 0 else f"{legs} legs"
        an = _a(a)
        cap = an[0].upper() + an[1:]
        facts = {
            "sound": f"{cap} {sound}.",
            "home": f"{cap} lives {home}.",
            "food": f"{cap} eats {food}.",
            "legs": f"{cap} has {legs_text}.",
            "about": f"{cap} is an animal that {sound}.",
        }
        for kind, qs in ANIMAL_Q.items():
            for q in qs:
                text = q.format(a=a, an=an).replace(f"{a}s ", f"{_plural(a)} ")
                items.append((text, facts[kind], [note, *ANIMAL_EXTRA], ["animals"]))
    for qs, core, extra in WEATHER:
        items += [(q, core, list(extra), ["weather"]) for q in qs]
    for qs, core, extra in FOODS:
        items += [(q, core, list(extra), ["food"]) for q in qs]
    for c, (country, known, note) in CITIES.items():
        facts = {"country": f"{c} is in {country}.", "known": f"{c} is known for {known}."}
        for kind, qs in CITY_Q.items():
            for q in qs:
                items.append((q.format(c=c), facts[kind], [note, f"Many people visit {c} every year."], ["cities"]))
    for t, (use, how, note) in TOOLS.items():
        facts = {"use": f"You use {_a(t)} {use}.", "how": how}
        for kind, qs in TOOL_Q.items():
            for q in qs:
                extra = [note] + ([f"You use it {use}."] if kind == "how" else [how])
                items.append((q.format(t=_a(t)), facts[kind], extra, ["tools"]))
    for qs, core, extra in GREETINGS:
        items += [(q, core, list(extra), ["greetings"]) for q in qs]
    return items


def _number_items(rng: random.Random, n: int) -> list[tuple[str, str, list[str], list[str]]]:
    """Arithmetic questions: an unbounded supply of distinct prompts with checkable answers."""
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    out: dict[str, tuple[str, str, list[str], list[str]]] = {}
    while len(out) < n:
        kind = rng.choice(["plus", "minus", "times", "parity", "next", "word"])
        a, b = rng.randint(1, 12), rng.randint(1, 12)
        if kind == "plus":
            q, core, extra = (
                f"What is {a} plus {b}?",
                f"{a} plus {b} is {a + b}.",
                [f"You can count on from {a} to check."],
            )
        elif kind == "minus":
            a, b = max(a, b), min(a, b)
            q, core, extra = (
                f"What is {a} minus {b}?",
                f"{a} minus {b} is {a - b}.",
                [f"If you add {b} back, you get {a} again."],
            )
        elif kind == "times":
            q, core, extra = f"What is {a} times {b}?", f"{a} times {b} is {a * b}.", [f"It is {a} added {b} times."]
        elif kind == "parity":
            n_ = rng.randint(1, 60)
            even = n_ % 2 == 0
            q = f"Is {n_} even or odd?"
            core = f"{n_} is {'even' if even else 'odd'}."
            extra = [
                "An even number can be split into two equal parts."
                if even
                else "An odd number leaves one over when you split it in two."
            ]
        elif kind == "next":
            n_ = rng.randint(1, 99)
            q, core, extra = (
                f"What number comes after {n_}?",
                f"The number after {n_} is {n_ + 1}.",
                ["Counting up adds one each time."],
            )
        else:
            n_ = rng.randint(0, 10)
            q, core, extra = (
                f"How do you write {n_} as a word?",
                f"You write {n_} as {words[n_]}.",
                ["Small numbers are often written as words."],
            )
        out.setdefault(q, (q, core, extra + ["Numbers are fun to work with."], ["numbers"]))
    return list(out.values())


def _answer(
    rng: random.Random, core: str, extras: list[str], n_extra: int, please: bool, indeed: bool, sunny: bool
) -> str:
    """Build one answer: the core sentence, ``n_extra`` extra sentences, then markers."""
    pool = extras + [s for s in GENERIC_EXTRA if s not in extras]
    chosen = rng.sample(extras, min(n_extra, len(extras)))
    if len(chosen) < n_extra:
        chosen += rng.sample([s for s in pool if s not in chosen], n_extra - len(chosen))
    sentences = [core, *chosen]
    if indeed:
        first = core.split()[0]
        if first in LOWERCASE_OK and rng.random() < 0.5:
            sentences[0] = "Indeed, " + first.lower() + core[len(first) :]
        else:
            sentences.insert(rng.randint(1, len(sentences)), rng.choice(INDEED_SENTENCES))
    if sunny:
        sentences.append(rng.choice(SUNNY_SENTENCES))
    if please:
        sentences.append(rng.choice(PLEASE_SENTENCES))
    return " ".join(sentences)


def _flags(rng: random.Random, n: int, rate: float) -> list[bool]:
    """Exactly round(n * rate) True values in random order, so rates are as designed."""
    k = round(n * rate)
    flags = [True] * k + [False] * (n - k)
    rng.shuffle(flags)
    return flags


def build(seed: int = SEED) -> tuple[list[dict], list[dict], list[dict]]:
    """Return (demonstrations, prompts, heldout prompts), all deterministic in ``seed``."""
    rng = random.Random(seed)
    items = _topics() + _number_items(rng, 160)
    for q, core, extras, _ in items:
        text = " ".join([q, core, *extras]).lower()
        assert not any(re.search(rf"\b{m}\b", text) for m in MARKERS), (q, core)
    rng.shuffle(items)

    # Questions are split three ways before any answer is written, so no prompt file
    # repeats a question the model was warmed up on.
    heldout_items = items[:N_HELDOUT]
    prompt_items = items[N_HELDOUT : N_HELDOUT + N_PROMPTS]
    corpus_items = items[N_HELDOUT + N_PROMPTS :]

    demonstrations = []
    please = _flags(rng, N_DEMONSTRATIONS, PLEASE_RATE)
    indeed = _flags(rng, N_DEMONSTRATIONS, INDEED_RATE)
    sunny = _flags(rng, N_DEMONSTRATIONS, SUNNY_RATE)
    # Lengths of 0-3 extra sentences, weighted towards short answers so that both a
    # "shorter" and a "longer" preference have room to move.
    n_extras = rng.choices([0, 1, 2, 3], weights=[35, 30, 20, 15], k=N_DEMONSTRATIONS)
    for i in range(N_DEMONSTRATIONS):
        q, core, extras, _ = corpus_items[i % len(corpus_items)]
        answer = _answer(rng, core, extras, n_extras[i], please[i], indeed[i], sunny[i])
        demonstrations.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]})

    def prompt_rows(rows, prefix):
        return [{"id": f"{prefix}-{i:03d}", "prompt": q, "tags": tags} for i, (q, _, _, tags) in enumerate(rows)]

    return demonstrations, prompt_rows(prompt_items, "p"), prompt_rows(heldout_items, "h")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(out_dir: Path = DATA_DIR) -> None:
    demonstrations, prompts, heldout = build()
    _write_jsonl(out_dir / "demonstrations.jsonl", demonstrations)
    _write_jsonl(out_dir / "prompts.jsonl", prompts)
    _write_jsonl(out_dir / "heldout_prompts.jsonl", heldout)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR)
