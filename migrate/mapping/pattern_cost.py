"""Worst-case backtracking cost of a table pattern, estimated from its parse tree before it runs.

Python's `re` backtracks. Nested repeats (`(a+)+`) are exponential, and the
table refuses them outright; but flat patterns can be slow too, and no
nesting check sees them:

- repeats that can trade characters multiply: `(.*)/(.*)/(.*)/(.*)/x`
  tries every way of placing four slashes, about n^4 / 4! steps on an
  n-character name (tens of seconds for 800 characters);
- variable parts under a bounded repeat multiply: `(a?){30}a{30}` tries
  2^30 combinations.

`worst_case_steps` walks the pattern left to right, counting the paths the
matcher can be on: an element that can end in several places, each followed
by text it could also have taken, multiplies them, and every element costs
its own tries once per path that reaches it. A repeat cannot trade with what
follows when the next character it would meet is one it cannot match
(`\\w+/` ends at the slash, so `(\\w+)/(\\w+)/(\\w+)` is linear). The
estimate is an upper bound up to constant factors, not an exact count.

Example:

>>> worst_case_steps(re.compile(r"(.*)/(.*)/kernel"), name_length=1024) < 10**7
True
>>> worst_case_steps(re.compile(r"(.*)/(.*)/(.*)/kernel"), name_length=1024) > 10**7
True
"""

import dataclasses
import math
import re
import re._compiler as compiler  # The standard library's own regex compiler and parser.
import re._parser as parser

# Characters tried against every character class: Latin-1, plus samples of
# letters, digits and spaces from other scripts. Each pattern's own literals
# and range ends are added, so two ranges or literals that overlap always
# share a probed character.
_SAMPLE_CHARACTERS = "\u0101\u0430\u05d0\u0660\u0966\u2003\u3000\u4e2d\uff10\U0001f600"
_REPEATS = (parser.MAX_REPEAT, parser.MIN_REPEAT)
_SINGLE_CHARACTER = (parser.LITERAL, parser.NOT_LITERAL, parser.ANY, parser.IN)
_ZERO_WIDTH = (parser.AT,)


@dataclasses.dataclass(frozen=True)
class _Element:
    """One step of a pattern: what it can consume, and how much backtracking it can cause.

    Attributes:
        first: characters it can start with.
        characters: characters it can consume anywhere.
        nullable: it can match the empty string.
        ways: paths through it that later steps may each have to be tried after.
        steps: work to try all of them once.
        variable: it can match texts of different lengths.
    """

    first: frozenset
    characters: frozenset
    nullable: bool
    ways: int
    steps: int
    variable: bool


class _Analysis:
    def __init__(self, pattern, name_length):
        self.tree = parser.parse(pattern.pattern, pattern.flags)
        self.name_length = name_length
        self.limit = (name_length + 1) ** 8  # Past this the exact size no longer matters.
        self.alphabet = self._alphabet(self.tree)
        self._sets = {}

    def _alphabet(self, tree):
        characters = {chr(code) for code in range(256)} | set(_SAMPLE_CHARACTERS)

        def collect(items):
            for operation, argument in items:
                if operation in (parser.LITERAL, parser.NOT_LITERAL):
                    characters.add(chr(argument))
                elif operation == parser.RANGE:
                    characters.update((chr(argument[0]), chr(argument[1])))
                elif operation == parser.IN or isinstance(argument, parser.SubPattern):
                    collect(argument)
                elif isinstance(argument, (list, tuple)):
                    for part in argument:
                        if isinstance(part, parser.SubPattern):
                            collect(part)
                        elif isinstance(part, list):
                            for branch in part:
                                if isinstance(branch, parser.SubPattern):
                                    collect(branch)
        collect(tree)
        return frozenset(characters)

    def characters_of(self, item):
        """Returns the probed characters a single-character item matches."""
        operation, argument = item
        if operation == parser.LITERAL and not self.tree.state.flags & re.IGNORECASE:
            return frozenset(chr(argument))
        key = repr(item)
        if key not in self._sets:
            single = compiler.compile(parser.SubPattern(self.tree.state, [item]))
            self._sets[key] = frozenset(
                character for character in self.alphabet if single.fullmatch(character))
        return self._sets[key]

    def cap(self, steps):
        return min(steps, self.limit)

    def sequence(self, items, follow):
        """Returns the `_Element` a sequence of items makes when `follow` comes after it."""
        items = list(items)
        elements, follows = [None] * len(items), [None] * len(items)
        after = follow
        # Right to left: what can come right after an element is the next
        # element's first characters, and what comes after that one while it
        # can match nothing.
        for index in range(len(items) - 1, -1, -1):
            follows[index] = after
            elements[index] = self.element(items[index], after)
            element = elements[index]
            after = element.first | (after if element.nullable else frozenset())
        paths, steps = 1, 0
        previous_plain = False
        for element, next_characters in zip(elements, follows):
            # A run of literal characters fails at its first mismatch: one
            # step per path for the whole run, not one per character.
            plain = element.ways == 1 and element.steps == 1 and not element.variable
            if not (plain and previous_plain):
                # Every path through the elements before this one tries it again.
                steps = self.cap(steps + paths * element.steps)
            previous_plain = plain
            trades = element.variable and bool(element.characters & next_characters)
            if trades or not element.variable:
                # Several ends, each followed by text it could also have taken,
                # or one end reached in several ways: the paths multiply. A
                # variable element that cannot take the next character ends
                # where that character starts: one path.
                paths = self.cap(paths * element.ways)
        first = frozenset()
        for element in elements:
            first |= element.first
            if not element.nullable:
                break
        characters = frozenset().union(*(element.characters for element in elements))
        low, high = parser.SubPattern(self.tree.state, items).getwidth()
        return _Element(first, characters, all(element.nullable for element in elements),
                        paths, max(steps, paths, 1), low != high)

    def element(self, item, follow):
        operation, argument = item
        if operation in _SINGLE_CHARACTER:
            characters = self.characters_of(item)
            return _Element(characters, characters, False, 1, 1, False)
        if operation in _ZERO_WIDTH:
            return _Element(frozenset(), frozenset(), True, 1, 1, False)
        if operation == parser.SUBPATTERN:
            return self.sequence(argument[-1], follow)
        if operation == parser.ATOMIC_GROUP:
            inner = self.sequence(argument, self.alphabet)
            # Nothing backtracks into an atomic group: one path out of it.
            return dataclasses.replace(inner, ways=1, variable=False)
        if operation in _REPEATS or operation == parser.POSSESSIVE_REPEAT:
            return self.repeat(operation, argument, follow)
        if operation in (parser.BRANCH, parser.GROUPREF_EXISTS):
            if operation == parser.BRANCH:
                branches = [self.sequence(branch, follow) for branch in argument[1]]
            else:
                branches = [self.sequence(branch, follow) for branch in argument[1:]
                            if branch is not None]
            return _Element(
                frozenset().union(*(branch.first for branch in branches)),
                frozenset().union(*(branch.characters for branch in branches)),
                any(branch.nullable for branch in branches) or operation != parser.BRANCH,
                self.cap(sum(branch.ways for branch in branches)),
                self.cap(sum(branch.steps for branch in branches)),
                any(branch.variable for branch in branches)
                or len({self._width(branch) for branch in branches}) > 1)
        if operation in (parser.ASSERT, parser.ASSERT_NOT):
            inner = self.sequence(argument[1], self.alphabet)
            return _Element(frozenset(), frozenset(), True, 1, inner.steps, False)
        # Back-references and anything newer: assume it can match anything.
        return _Element(self.alphabet, self.alphabet, True, 1, 1, True)

    def _width(self, element):
        return (element.nullable, element.variable)

    def repeat(self, operation, argument, follow):
        low, high, body_items = argument
        count_high = min(high, self.name_length)
        first = self.sequence(body_items, self.alphabet).first
        body = self.sequence(body_items, first | follow if count_high > 1 else follow)
        choices = max(count_high - low + 1, 1)
        if body.ways > 1:
            # Each iteration can go several ways, and each way of one is tried
            # with every way of the others.
            too_many = count_high * math.log(body.ways) + math.log(choices) > math.log(self.limit)
            ways = self.limit if too_many else self.cap(choices * body.ways ** count_high)
        else:
            ways = choices
        if operation == parser.POSSESSIVE_REPEAT:
            ways = 1  # A possessive repeat gives nothing back.
        work = max(body.steps // max(body.ways, 1), 1)
        return _Element(first, body.characters, low == 0 or body.nullable, ways,
                        self.cap(max(ways, choices) * work),
                        operation != parser.POSSESSIVE_REPEAT and (choices > 1 or body.variable))


def worst_case_steps(pattern, *, name_length):
    """Estimates how many backtracking steps `pattern.fullmatch` may take on a name.

    Args:
        pattern: a compiled `re.Pattern`.
        name_length: the longest name the pattern will be asked to match.

    Returns:
        An integer upper estimate (within constant factors) of the number of
        ways the matcher may try, on the worst name of that length.

    Example:

        steps = worst_case_steps(re.compile("(a?){30}a{30}"), name_length=1024)
        assert steps >= 2 ** 30
    """
    analysis = _Analysis(pattern, name_length)
    return analysis.sequence(analysis.tree, frozenset()).steps
