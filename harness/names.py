"""The names a scenario gives things, shared by the steps, the scenario model and the runner.

A leaf module: it imports nothing of the harness, so every layer can name these types.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

#: a name the scenario chooses for an entity (or a snapshot)
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a name the scenario chooses")]
#: a replica of the deployment (`deployment.replicas`)
ReplicaName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,15}$")]
EntityKind = Literal["organization", "team", "user", "key", "end_user", "budget", "team_member", "tag"]
ANY_ENTITY: tuple[EntityKind, ...] = get_args(EntityKind)
