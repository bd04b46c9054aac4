"""Deterministic intent parsing: a chat message becomes a validated retrieval query.

This half needs no LLM, so chat keeps working when the model is off, slow or wrong;
an LLM proposal is merged in later only where it agrees with what is parsed here.
Everything is lexicon + regex over word boundaries (and edit distance for misspelt
titles): predictable, about a millisecond at most, and extended by editing the
vocabulary in `lexicon.yaml` rather than the code.

Rules a reader would otherwise have to reverse-engineer:

- Phrases are consumed in a fixed order (titles, runtime, years, count, language,
  negations, then genre/mood words); a consumed phrase is blanked so later rules
  cannot re-read it. That is how "like Alien" adds Alien's id but not Sci-Fi, and
  how "less than 2 hours" is a runtime rather than a negation.
- ``text`` is the message minus the consumed constraint phrases (titles, negations,
  years, runtime, count, language). Genre and mood words stay: they are what the
  text embedding should match. Negated words go, or "no horror" would pull horror in.
- Violence: negated "gory"/"gore"/"bloody" exclude Horror; negated "violent"/
  "violence"/"brutal" exclude Horror and War, the genres that are violent by design
  (Action/Crime/Thriller stay: people who ask for "a thriller, not too violent" still
  want the thriller). Positively, "gory" means Horror; "violent" is only a mood term.
- Eras are relative to the catalog, not the calendar (MovieLens ends in 2018):
  "recent"/"latest"/"newest"/"new movies" -> year_min = the catalog's last year - 2;
  "old"/"older" with nothing to compare to -> year_max = its last year - 20;
  "classic"/"vintage"/"old-school"/"golden age" -> year_max 1979 (or the catalog's
  first 20 years, where it has nothing that old). "this year"/"last year" read the
  caller's date. A bare "new" is ignored ("New York", "something new" meaning unseen).
  "from 1999"/"in 2004" mean exactly that year. Two-digit decades "00s".."20s" are
  2000s-2020s, "30s".."90s" the 1900s; "early"/"mid"/"late" take 4-year slices of the
  decade.
- Runtime: "short"/"a quick watch" -> 100 minutes; "not too long" -> 120.
- A title is read only after a trigger ("like", "similar to", "in the style of", ...;
  not "I'd like"), from the longest phrase up to a clause boundary, shrinking from the
  right until some catalog title contains the phrase's words contiguously, as whole
  words (TitleIndex's own tokens, accents dropped: "Amelie" is "Amélie"; ranked as
  TitleIndex.search ranks), or, where no title does, misspells a run of a title's
  words. Each phrase is tried exactly, then fuzzily, before it is shrunk, so "Lord of
  the Rigns" is corrected before "Lord" finds "Lord of War". Misspelt means: each word
  that differs is one edit from its title word (a swap counts one; two edits from 10
  letters; none under 3 letters; in a phrase of three words or more, one word only),
  and the phrase, less the filler it shares with the title, scores at least
  FUZZY_THRESHOLD = 85 on rapidfuzz's fuzz.ratio ("pulp fictoin" 91.7); ties go to the
  closer spelling, then as search ranks. A word no title has may just be English, so
  a lowercase phrase needs one ("forest gump" stays words, "Forest Gump" is
  corrected), a lone word must be capitalised or follow "the" and spell a whole title
  ("the matrx", "Terminater"; not "the wanting coast"), and a word that is another
  plus letters at an edge ("rainy" for "Rain") is no typo. A lowercase phrase made
  only of lexicon words, or of misspellings of them ("like horror", "like alien",
  "like horor movies"), is read as genre/mood words instead; capitalised ("like
  Alien") it is tried as a title, exactly only. "like Heat, Ronin and Collateral" gives
  three ids; names after the first must be whole titles (or misspell one).
- Follow-ups (``previous`` given): constraints the message does not touch are kept;
  explicit new ones override. New genres/moods replace the old ones unless the message
  adds ("also", "too", "more", "funnier", ...); exclusions accumulate; a new include
  lifts an old exclusion. "older"/"less recent" after a page cap the years below the
  shown page's median year (and below the previous window's start); "newer"/"more
  recent" start above it; a previous window with both ends ("90s") shifts by its own
  width instead ("80s", "00s"); "shorter" takes 20 minutes off the previous cap (100
  if there was none); "longer" drops the cap. A follow-up with no content words of its
  own ("something older", "more like that") keeps the previous text.

Modules: `query` (the RetrievalQuery contract), `lexicon` (+ lexicon.yaml: the words),
`patterns` (regexes, the lexicon compiled per catalog), `scan` (consumption state),
`titles` (exact and fuzzy titles), `constraints` (runtime, years, count, language),
`parse` (genres, moods, negations, assembly, `parse_intent`).
"""

from __future__ import annotations

from llm.intent.lexicon import FUNCTION_WORDS, GENERIC_WORDS, LEXICON, Sense
from llm.intent.parse import parse_intent
from llm.intent.query import RetrievalQuery

__all__ = ["FUNCTION_WORDS", "GENERIC_WORDS", "LEXICON", "RetrievalQuery", "Sense", "parse_intent"]
