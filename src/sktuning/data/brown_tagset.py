"""Brown corpus tags -> the 12 universal tags of Petrov, Das & McDonald (2012).

The base tags follow the usual en-brown mapping (the one NLTK's `tagset="universal"` uses).
Brown also writes compound tags: `NN-TL` (title), `-HL` (headline), `-NC` (cited word),
`BEZ*` (negated), `PPS+BEZ` (contraction), `FW-NN` (foreign word). These are reduced by rule
instead of listed one by one: a foreign word is `X`; the suffixes are dropped; a contraction
takes its first part's tag, except that a non-verb joined to a verb (`it's` PPS+BEZ, `I'll`
PPSS+MD) is `PRT`, as in the en-brown table. On the whole corpus this differs from the full
en-brown table on 5 of 1,161,192 tokens (one-off tags such as `WRB+IN`, `DO+PPSS`, `JJ$-TL`).
"""

from __future__ import annotations

import re

UNIVERSAL_TAGS = ["ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRT", "PRON", "VERB", ".", "X"]

_GROUPS: dict[str, str] = {
    ".": ". , : ( ) -- `` '' '",
    "ADJ": "AP JJ JJR JJS JJT OD",
    "ADP": "CS IN",
    "ADV": "* QL QLP RB RBR RBT RN WQL WRB",
    "CONJ": "CC",
    "DET": "ABX AT DT DT$ DTI DTS DTX PP$ WDT WP$",
    "NOUN": "CD$ NN NNS NP NPS NR NRS PN",
    "NUM": "CD",
    "PRT": "ABL ABN AP$ EX RB$ RP TO UH",
    "PRON": "PP$$ PPL PPLS PPO PPS PPSS WPO WPS",
    "VERB": "BE BED BEDZ BEG BEM BEN BER BEZ DO DOD DOZ HV HVD HVG HVN HVZ MD VB VBD VBG VBN VBZ",
    "X": "NIL",
}
BASE_TAGS: dict[str, str] = {tag: universal for universal, tags in _GROUPS.items() for tag in tags.split()}

_SUFFIX = re.compile(r"(?<=.)-(HL|TL|NC|T|N)$")  # `-T`, `-N`: typos in a few files


def to_universal(tag: str) -> str:
    """The universal tag for one Brown tag (case-insensitive); unknown tags are `X`, as in NLTK."""
    tag = tag.upper()
    if tag.startswith("FW-"):
        return "X"
    while True:  # `AT-TL-HL`, `---HL` (a dash in a headline)
        stripped = _SUFFIX.sub("", tag)
        if stripped == tag:
            break
        tag = stripped
    if "+" in tag[1:]:
        first, second = (_base(part) for part in tag.split("+")[:2])
        return "PRT" if second == "VERB" and first != "VERB" else first
    return _base(tag)


def _base(tag: str) -> str:
    if tag in BASE_TAGS:
        return BASE_TAGS[tag]
    if len(tag) > 1 and tag.endswith("*"):  # negated: `BEZ*` is `isn't`
        tag = tag[:-1]
    if tag not in BASE_TAGS and len(tag) > 1 and tag.endswith("$"):  # possessive: `NN$`, `NPS$`
        tag = tag[:-1]
    return BASE_TAGS.get(tag, "X")
