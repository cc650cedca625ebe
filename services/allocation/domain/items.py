"""Items, their declared substitutes and the families they form (pure).

Substitution is symmetric: if A lists B as a substitute, a pledge of B may serve a need for A and
a pledge of A a need for B. A family is a connected component of that graph; the planner solves
each family on its own, so a change re-plans only the family it touches. Items the catalogue does
not know form a family of their own.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.catalogue import Item


class ItemGraph:
    def __init__(self, items: Iterable[Item]) -> None:
        self._capability: dict[str, str] = {}
        self._neighbours: dict[str, set[str]] = {}
        for item in items:
            self._capability[item.code] = item.capability
            self._neighbours.setdefault(item.code, set())
            for other in item.substitutes:
                if other != item.code:
                    self._neighbours[item.code].add(other)
                    self._neighbours.setdefault(other, set()).add(item.code)
        self._family: dict[str, frozenset[str]] = {}
        for code in sorted(self._neighbours):
            if code not in self._family:
                component = self._component(code)
                for member in component:
                    self._family[member] = component

    def _component(self, start: str) -> frozenset[str]:
        seen, todo = {start}, [start]
        while todo:
            for other in self._neighbours[todo.pop()]:
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return frozenset(seen)

    def capability(self, code: str) -> str:
        return self._capability.get(code, "")

    def family(self, code: str) -> frozenset[str]:
        return self._family.get(code, frozenset({code}))

    def family_key(self, code: str) -> str:
        """A stable name for the family: its smallest item code."""
        return min(self.family(code))

    def compatible(self, need_item: str, offer_item: str) -> bool:
        """Whether a pledge of `offer_item` may serve a need for `need_item`."""
        return need_item == offer_item or offer_item in self._neighbours.get(need_item, ())

    def substitutes(self, code: str) -> list[str]:
        return sorted(self._neighbours.get(code, ()))
