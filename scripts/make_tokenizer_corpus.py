"""Writes the tokenizer parity corpus: tests/golden/tokenizer_corpus.json.gz.

A deterministic (seeded) list of >= 5,000 varied strings: real captions and
English prose, templates x labels, punctuation runs, digits, accented and
non-Latin scripts, CJK, emoji and ZWJ sequences, HTML entities, mojibake,
tabs/newlines/control characters, very long text, the empty string and
whitespace only, literal special tokens and random Unicode mixtures.

Run with any Python (needs only the standard library):
    python scripts/make_tokenizer_corpus.py
then regenerate the reference ids with scripts/make_tokenizer_golden.py.
"""

import gzip
import json
import os
import random
import re

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "tokenizer_corpus.json.gz")
SEED = 20260101

CAPTIONS = [
    "A man riding a wave on top of a surfboard.",
    "Two dogs playing with a frisbee in the park.",
    "A plate of food with broccoli, rice and chicken",
    "a red double-decker bus driving down a city street",
    "The kitchen has stainless steel appliances and granite countertops.",
    "A cat sleeping on a laptop keyboard",
    "people standing around a table with laptops on it",
    "An old black & white photo of a train station, circa 1920.",
    "A giraffe eating leaves from the top of a tree.",
    "Close-up of a woman's hand holding a smartphone",
    "a bowl of ramen w/ a soft-boiled egg (ajitama) & scallions",
    "Sunset over the Golden Gate Bridge, San Francisco, CA",
    "A little girl blowing out candles on her 5th birthday cake!!!",
    "Man in a yellow jacket skiing down a snowy slope",
    "Stop sign at the corner of 5th Ave. and 42nd St.",
    "a herd of elephants walking across a dry grass field",
    "Boy's bicycle leaning against a white picket fence.",
    "Photo: Getty Images / AFP",
    "IMG_20190714_183422.jpg",
    "Vintage 1970s Polaroid camera - excellent condition - $45 OBO",
    "Best hiking trails near Seattle (2023 update)",
    "Women's running shoes, size 7.5, blue/grey",
    "A bathroom with a toilet, sink and shower curtain.",
    "They're sitting on a bench; it's raining and we'll be late.",
    "I'd say he's the best player we've seen, isn't he?",
    "a photo of a dog.",
    "a photo of a cat.",
    "a blurry photo of the tench.",
    "a sculpture of a goldfish.",
    "itap of a great white shark.",
    "a close-up photo of a hammerhead shark.",
    "a bright photo of the electric ray.",
    "a drawing of a stingray.",
    "a pixelated photo of the rooster.",
    "a black and white photo of a hen.",
    "a tattoo of the ostrich.",
    "a low resolution photo of a brambling.",
    "art of the goldfinch.",
    "a plastic house finch.",
    "the origami junco.",
    "a rendering of the indigo bunting.",
    "Café au lait with a croissant at a Parisian bistro",
    "Crème brûlée, naïve façade, coöperate, jalapeño, Zürich, São Paulo",
    "Ångström, Øresund, Łódź, Dvořák, Škoda, İstanbul, Đà Nẵng",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    "Mr. O'Neil's car—a 1967 Mustang—was parked outside.",
    "“Smart quotes” and ‘single ones’ … and an ellipsis",
    "Price: €12,50 / £10.99 / ¥1,200 / ₹500 / $3.14",
    "Temperature 23°C (73.4°F), humidity 45%",
    "E = mc², H₂O, x³ + y³ = z³, ½ + ¼ = ¾",
    "Visit https://example.com/path?query=1&lang=en#top now",
    "email me at john.doe+clip@example.co.uk",
    "#sunset #beach #nofilter @traveler_123",
    "C++ vs. C# vs. F#: which is faster?",
    "rm -rf /tmp/* && echo 'done' || exit 1",
    "<div class=\"caption\">A dog</div>",
    "<b>bold</b> and <i>italic</i> <br/> text",
]

TEMPLATES = [
    "a photo of a {}.", "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
    "graffiti of a {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "the embroidered {}.", "a bright photo of a {}.", "a photo of a clean {}.",
    "a photo of a dirty {}.", "a dark photo of the {}.", "a drawing of a {}.",
    "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a pixelated photo of the {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.",
    "a photo of the {}.", "a good photo of the {}.", "a rendition of the {}.",
    "a cartoon {}.", "art of a {}.", "a sketch of the {}.", "a toy {}.", "itap of a {}.",
    "a {} in a video game.", "there is a {} in the scene.", "a photo of {}, a type of pet.",
]

LABELS = [
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark", "cock", "hen",
    "ostrich", "brambling", "goldfinch", "house finch", "junco", "indigo bunting", "robin",
    "bulbul", "jay", "magpie", "chickadee", "water ouzel", "kite", "bald eagle", "vulture",
    "great grey owl", "fire salamander", "common newt", "eft", "spotted salamander",
    "axolotl", "bullfrog", "tree frog", "tailed frog", "loggerhead", "leatherback turtle",
    "mud turtle", "terrapin", "box turtle", "banded gecko", "common iguana", "American chameleon",
    "whiptail", "agama", "frilled lizard", "alligator lizard", "Gila monster", "green lizard",
    "African chameleon", "Komodo dragon", "African crocodile", "American alligator", "triceratops",
    "airliner", "airship", "ambulance", "amphibian", "analog clock", "apiary", "apron",
    "ashcan", "assault rifle", "backpack", "bakery", "balance beam", "balloon", "ballpoint",
    "Band Aid", "banjo", "bannister", "barbell", "barber chair", "barbershop", "barn",
    "yellow lady's slipper", "corn", "acorn", "hip", "buckeye", "coral fungus", "agaric",
    "gyromitra", "stinkhorn", "earthstar", "hen-of-the-woods", "bolete", "ear", "toilet tissue",
    "Shih-Tzu", "Rhodesian ridgeback", "Afghan hound", "basset", "beagle", "bloodhound",
    "Saint Bernard", "St. Bernard", "potter's wheel", "jack-o'-lantern", "carpenter's kit",
    "three-toed sloth", "lesser panda", "giant panda", "Persian cat", "Egyptian cat",
]

ACCENTED = [
    "Crème brûlée", "Ça va très bien, merci", "Größe und Maßstab", "Schönheit ist überall",
    "niño, año, señor, mañana", "Ação e reação", "Tiếng Việt có dấu", "Đây là một con mèo",
    "Český Krumlov", "Żółć gęślą jaźń", "Smørrebrød på Ærø", "Ísland og Færeyjar",
    "Türkçe karakterler: ğüşıöç İĞÜŞÖÇ", "Română: ș ț ă î â", "Magyar: őű ŐŰ",
    "naïve café résumé", "Ελληνικά: Καλημέρα κόσμε", "Русский: Съешь же ещё этих мягких булок",
    "Українська: Ґанок і їжак", "Български: Жълтата дюля", "Српски: Ђурђевак",
]

SCRIPTS = [
    "مرحبا بالعالم، هذه صورة قطة", "שלום עולם, זו תמונה של כלב", "नमस्ते दुनिया, यह एक बिल्ली है",
    "สวัสดีชาวโลก นี่คือรูปแมว", "안녕하세요 세계, 이것은 고양이 사진입니다", "こんにちは世界、これは猫の写真です",
    "カタカナとひらがなと漢字", "你好世界，这是一张猫的照片。", "我們在台北看日落", "繁體中文和简体中文",
    "ዓለም ሰላም", "Բարեւ աշխարհ", "გამარჯობა სამყაროვ", "வணக்கம் உலகம்", "ಕನ್ನಡ ಪದಗಳು",
    "ভালো আছেন", "ਸਤ ਸ੍ਰੀ ਅਕਾਲ", "ગુજરાતી લખાણ", "සිංහල අකුරු", "ພາສາລາວ", "ភាសាខ្មែរ",
    "မြန်မာဘာသာ", "བོད་ཡིག", "ᠮᠣᠩᠭᠣᠯ", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ", "ᚠᚢᚦᚨᚱᚲ", "𐌰𐌱𐌲",
    "ﷺ ﷽", "١٢٣٤٥٦٧٨٩٠", "०१२३४५६७८९", "〇一二三四五六七八九十百千万億",
    "Ⅰ Ⅱ Ⅲ Ⅳ ⅰⅱⅲ", "①②③ ⑴⑵⑶ ⒈⒉⒊", "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ　１２３", "ｶﾀｶﾅ ﾊﾝｶｸ",
]

EMOJI = [
    "😀", "😂", "🥲", "❤️", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "🇺🇸", "🇯🇵", "🇫🇷🇩🇪",
    "🧑🏿‍🚀", "👁️‍🗨️", "🐈‍⬛", "🐕‍🦺", "❤️‍🔥", "🫠", "🥹", "🧡💛💚💙💜", "✨🎉🎊", "☕️", "✔︎", "#️⃣", "1️⃣",
    "🏊‍♀️", "🚴🏻‍♂️", "🤷‍♂️", "💁🏼‍♀️", "🔥🔥🔥", "🍕🍔🍟", "🌍🌎🌏", "🐶🐱🐭🐹",
]

ENTITIES = [
    "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&apos;", "&nbsp;", "&copy;", "&eacute;",
    "&amp;amp;", "&amp;lt;b&amp;gt;", "&amp;amp;amp;", "&#8220;quoted&#8221;", "&#x1F600;",
    "&hellip;", "&mdash;", "&ndash;", "&euro;", "&pound;", "&frac12;", "&notanentity;",
    "&amp", "&lt", "AT&T", "R&D", "Q&A", "&#0;", "&#128512;", "&#xD83D;", "&zwj;", "&shy;",
]

PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + list("¡¿«»–—…•·§¶†‡°±×÷‰′″‹›€™")

WHITESPACE = [
    "", " ", "  ", "\t", "\n", "\r\n", "\r", " \t \n ", "\u00a0", "\u2003", "\u3000", "\u200b",
    "\u2028", "\u2029", "\x0b", "\x0c", "\u180e", "\ufeff", "\u200d", "\u200c",
]

CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\x9c", "\ufffd"]

SPECIAL = [
    "<start_of_text>", "<end_of_text>", "<|startoftext|>", "<|endoftext|>", "<START_OF_TEXT>",
    "x<end_of_text>y", "!<start_of_text>", "<<start_of_text>>", "<ſtart_of_text>", "</w>",
    "'s", "'S", "'ſ", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "K'ſ",
]

# Random code points from long-assigned blocks (avoid recently added characters).
RANGES = [
    (0x20, 0x7E), (0xA0, 0x17F), (0x370, 0x3CE), (0x400, 0x45F), (0x5D0, 0x5EA), (0x621, 0x64A),
    (0x905, 0x939), (0xE01, 0xE2E), (0x3041, 0x3094), (0x30A1, 0x30FA), (0x4E00, 0x9FA5),
    (0xAC00, 0xD7A3), (0x2000, 0x206F), (0x2190, 0x21FF), (0x2500, 0x257F), (0xFF01, 0xFF5E),
    (0x1F600, 0x1F64F), (0x1F300, 0x1F5FF), (0x300, 0x36F),
]


def mojibake(text, rng):
    """UTF-8 bytes misread as cp1252 / latin-1 (what ftfy repairs)."""
    data = text.encode("utf-8")
    codec = rng.choice(["cp1252", "latin-1"])
    return data.decode(codec, errors="replace" if codec == "cp1252" else "strict")


def prose_sentences():
    import pydoc_data.topics

    text = " ".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
    pieces = re.split(r"(?<=[.!?])\s+", text)
    return [p for p in pieces if 10 <= len(p) <= 400]


def random_unicode(rng, n):
    out = []
    for _ in range(n):
        lo, hi = rng.choice(RANGES)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def build():
    rng = random.Random(SEED)
    corpus = []
    corpus += CAPTIONS + ACCENTED + SCRIPTS + EMOJI + ENTITIES + WHITESPACE + CONTROL + SPECIAL
    corpus += ["".join(PUNCT), "!!!", "???!!!...", "...", "--", "''", '""', "a.b.c", "(((x)))"]
    corpus += ["0", "7", "42", "3.14159", "1,000,000", "2024-01-31", "12:34:56", "+1 (555) 010-9999",
               "007", "1st 2nd 3rd 4th", "0x1F600", "1e-10", "99.9%", "٣٤٥", "２０２４年"]
    prose = prose_sentences()
    rng.shuffle(prose)
    corpus += prose[:1500]
    for _ in range(700):
        corpus.append(rng.choice(TEMPLATES).format(rng.choice(LABELS)))
    words = [w for s in CAPTIONS + ACCENTED + SCRIPTS for w in s.split()]
    makers = [
        lambda: " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))),
        lambda: rng.choice(CAPTIONS) + " " + rng.choice(EMOJI),
        lambda: rng.choice(EMOJI) * rng.randint(1, 5) + " " + rng.choice(LABELS),
        lambda: rng.choice(ENTITIES).join(rng.choice(words) for _ in range(3)),
        lambda: mojibake(rng.choice(ACCENTED + CAPTIONS[40:50]), rng),
        lambda: mojibake(mojibake(rng.choice(ACCENTED), rng), rng),
        lambda: rng.choice(WHITESPACE).join(rng.choice(words) for _ in range(rng.randint(2, 6))),
        lambda: "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 30))),
        lambda: " ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(rng.randint(1, 6))),
        lambda: random_unicode(rng, rng.randint(1, 40)),
        lambda: rng.choice(SPECIAL) + " " + rng.choice(words) + rng.choice(SPECIAL),
        lambda: rng.choice(CONTROL).join(rng.choice(words) for _ in range(3)),
        lambda: rng.choice(words).upper() + "'" + rng.choice(["S", "s", "T", "LL", "ve", "re", "D", "M"]),
        lambda: rng.choice(SCRIPTS) + rng.choice(PUNCT) + rng.choice(SCRIPTS),
        lambda: "\t".join(rng.choice(LABELS) for _ in range(3)) + "\n" + rng.choice(CAPTIONS),
        lambda: " ".join(rng.choice(prose) for _ in range(rng.randint(2, 8))),  # long text
        lambda: rng.choice(words) * rng.randint(20, 120),  # very long single word
        lambda: (" " * rng.randint(0, 5)) + rng.choice(CAPTIONS).lower() + (" " * rng.randint(0, 5)),
        lambda: "".join(rng.choice([c.upper(), c.lower()]) for c in rng.choice(CAPTIONS)),
    ]
    while len(corpus) < 6000:
        corpus.append(rng.choice(makers)())
    # Some very long texts (far over 77 tokens, thousands of characters).
    corpus += [" ".join(rng.choice(prose) for _ in range(40)) for _ in range(20)]
    # Surrogate halves cannot be encoded as UTF-8 by anyone; drop them.
    corpus = [s for s in corpus if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]
    return corpus


def main():
    corpus = build()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write(json.dumps(corpus, ensure_ascii=True, indent=0).encode("ascii"))
    print(f"wrote {len(corpus)} strings to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
