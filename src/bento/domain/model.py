"""Entities and value objects: the building blocks inside an aggregate."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ValueObject(BaseModel):
    """Immutable, compared by value. Subclass and add fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Entity(BaseModel):
    """Mutable, compared by identity (`id`), not by its other fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, Entity) and other.id == self.id

    def __hash__(self) -> int:
        return hash((type(self), self.id))
