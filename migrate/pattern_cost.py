"""Worst-case backtracking cost of a table pattern, estimated from its parse tree before it runs.

Python's `re` backtracks. Nested repeats (`(a+)+`) are exponential, and the
table refuses them outright; but flat patterns can be slow too, and no
nesting check sees them:

- repeats that can trade characters multiply: `(.*)/(.*)/(.*)/(.*)/x`
  tries every way of placing four slashes, about n^4 / 4! steps on an
  n-character name (tens of seconds for 800 characters);
- variable parts under a bounded repeat multiply: `(a?){30}a{30}` tries
  2^30 combinations.

`worst_case_steps` walks the pattern as a sequence of elements and multiplies
the number of ways each variable element can match along every run of
elements that can trade characters. A repeat cannot trade with what follows
when the next character it would meet is one it cannot match (`\\w+/` ends
at the slash, so `(\\w+)/(\\w+)/(\\w+)` is linear). The estimate is an upper
bound up to constant factors, not an exact count.

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
    """One step of a pattern: what it can consume and in how many ways it can match."""

    first: frozenset  # characters it can start with
    characters: frozenset  # characters it can consume anywhere
    nullable: bool  # it can match the empty string
    steps: int  # ways it can match from a given position, internal backtracking included
    variable: bool  # it can end at more than one position


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
        """Returns `(worst steps, element)` for a sequence followed by `follow`."""
        elements = [self.element(item) for item in items]
        # What can come right after each element: the next element's first
        # characters, and past it while it can match nothing.
        follows = [frozenset()] * len(elements)
        after = follow
        for index in range(len(elements) - 1, -1, -1):
            follows[index] = after
            element = elements[index]
            after = element.first | (after if element.nullable else frozenset())
        worst = chain = 1
        for element, next_characters in zip(elements, follows):
            worst = max(worst, element.steps)
            if not element.variable:
                continue
            chain = self.cap(chain * element.steps)
            worst = max(worst, chain)
            if not element.characters & next_characters:
                chain = 1  # Its end is forced: it cannot trade characters with what follows.
        first = frozenset()
        for element in elements:
            first |= element.first
            if not element.nullable:
                break
        characters = frozenset().union(*(element.characters for element in elements))
        low, high = items.getwidth() if isinstance(items, parser.SubPattern) else (0, 0)
        return worst, _Element(first, characters, all(element.nullable for element in elements),
                               worst, low != high or worst > 1)

    def element(self, item):
        operation, argument = item
        if operation in _SINGLE_CHARACTER:
            characters = self.characters_of(item)
            return _Element(characters, characters, False, 1, False)
        if operation in _ZERO_WIDTH:
            return _Element(frozenset(), frozenset(), True, 1, False)
        if operation == parser.SUBPATTERN:
            return self.group(argument[-1])
        if operation == parser.ATOMIC_GROUP:
            inner = self.group(argument)
            # Nothing backtracks into an atomic group: it ends where it first ends.
            return dataclasses.replace(inner, variable=False)
        if operation in _REPEATS or operation == parser.POSSESSIVE_REPEAT:
            return self.repeat(operation, argument)
        if operation == parser.BRANCH:
            branches = [self.group(branch) for branch in argument[1]]
            return _Element(
                frozenset().union(*(branch.first for branch in branches)),
                frozenset().union(*(branch.characters for branch in branches)),
                any(branch.nullable for branch in branches),
                self.cap(sum(branch.steps for branch in branches)), True)
        if operation in (parser.ASSERT, parser.ASSERT_NOT):
            inner = self.group(argument[1])
            return _Element(frozenset(), frozenset(), True, inner.steps, False)
        if operation == parser.GROUPREF_EXISTS:
            _, yes, no = argument
            branches = [self.group(branch) for branch in (yes, no) if branch is not None]
            return _Element(
                frozenset().union(*(branch.first for branch in branches)),
                frozenset().union(*(branch.characters for branch in branches)),
                True, self.cap(sum(branch.steps for branch in branches)), True)
        # Back-references and anything newer: assume it can match anything.
        return _Element(self.alphabet, self.alphabet, True, 1, True)

    def group(self, items):
        return self.sequence(items, self.alphabet)[1]

    def repeat(self, operation, argument):
        low, high, body_items = argument
        body = self.sequence(body_items, self.alphabet)[1]
        count_high = min(high, self.name_length)
        choices = max(count_high - low + 1, 1)
        if body.steps > 1 or (body.variable and count_high > 1):
            # Every iteration can match in several ways: the ways multiply.
            per_iteration = max(body.steps, 2)
            steps = self.limit if count_high * math.log(per_iteration) > math.log(self.limit) \
                else self.cap(per_iteration ** count_high * choices)
        else:
            steps = choices
        variable = operation != parser.POSSESSIVE_REPEAT and (choices > 1 or body.variable)
        return _Element(body.first, body.characters, low == 0 or body.nullable,
                        steps if variable else 1, variable)


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
    return analysis.sequence(analysis.tree, frozenset())[0]
