"""A small sales team, routing rules and leads for the handoff tests (plain functions, not fixtures)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from core.auth import Actor, actor_for, hash_password
from db.models import Account, Lead, RoutingRule, Stage, User

# Monday 2 November 2026, 10:00 in Shanghai.
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


@dataclass
class Team:
    admin: Actor
    marketer: Actor
    manager: Actor
    other_manager: Actor
    rep1: Actor  # East China, manufacturing
    rep2: Actor  # North China
    rep3: Actor  # South China, data platform
    rep4: Actor  # round robin only
    outsider: Actor  # a rep of the other manager's team

    def refresh(self, session: Session) -> Team:
        """Actors again (a manager's team list is read when the actor is built)."""
        return Team(**{name: actor_for(session, session.get(User, getattr(self, name).id))
                       for name in self.__dataclass_fields__})


_HASH: list[str] = []


def _user(session: Session, username: str, role: str, **kwargs: Any) -> User:
    """A user row with one shared password hash (argon2 is slow on purpose; tests need not pay it per user)."""
    if not _HASH:
        _HASH.append(hash_password("Passw0rd!x"))
    user = User(username=username, role=role, password_hash=_HASH[0],
                display_name=kwargs.pop("display_name", username), **kwargs)
    session.add(user)
    session.flush()
    return user


def build_team(session: Session, *, emails: bool = False) -> Team:
    def mail(name: str) -> str | None:
        return f"{name}@example.cn" if emails else None

    admin = _user(session, "admin", "admin")
    marketer = _user(session, "marketer", "marketer", display_name="李娜")
    manager = _user(session, "manager", "manager", display_name="王强", email=mail("manager"))
    other = _user(session, "manager2", "manager", display_name="赵敏")
    session.flush()
    rep1 = _user(session, "sales1", "sales", display_name="张伟", manager_id=manager.id, email=mail("sales1"),
                 territories=["上海", "江苏", "浙江"], industries=["制造业"])
    rep2 = _user(session, "sales2", "sales", display_name="刘洋", manager_id=manager.id, email=mail("sales2"),
                 territories=["北京", "天津"])
    rep3 = _user(session, "sales3", "sales", display_name="陈静", manager_id=manager.id, email=mail("sales3"),
                 territories=["广东"], product_lines=["数据平台"])
    rep4 = _user(session, "sales4", "sales", display_name="周凯", manager_id=manager.id, email=mail("sales4"))
    outsider = _user(session, "sales9", "sales", display_name="孙丽", manager_id=other.id)
    session.commit()
    return Team(*(actor_for(session, u) for u in (admin, marketer, manager, other, rep1, rep2, rep3, rep4,
                                                   outsider)))


def demo_rules(session: Session, team: Team) -> None:
    """The order of the demo: ABM, East China, manufacturing, North China, data platform, round robin."""
    rules = [
        ("重点客户归属负责人", "account", {}, []),
        ("华东区域", "territory", {"provinces": ["上海", "江苏", "浙江"]}, [team.rep1.id]),
        ("制造业", "industry", {"industries": ["制造业"]}, [team.rep1.id]),
        ("华北区域", "territory", {"provinces": ["北京", "天津", "河北"]}, [team.rep2.id]),
        ("数据平台产品线", "product_line", {"product_lines": ["数据平台"]}, [team.rep3.id]),
        ("其他：轮询", "round_robin", {}, [team.rep1.id, team.rep2.id, team.rep3.id, team.rep4.id]),
    ]
    for position, (name, kind, params, reps) in enumerate(rules, start=1):
        session.add(RoutingRule(position=position * 10, name=name, kind=kind, params=params, rep_ids=reps))
    session.commit()


def make_lead(session: Session, stage: str = Stage.NEW, **fields: Any) -> int:
    lead = Lead(name=fields.pop("name", "王芳"), company=fields.pop("company", "上海示例科技有限公司"), stage=stage,
                **fields)
    session.add(lead)
    session.commit()
    return lead.id  # type: ignore[return-value]


def make_account(session: Session, owner_id: int | None, name: str = "杭州重点客户") -> int:
    account = Account(name=name, name_key=name, owner_id=owner_id, is_target=True)
    session.add(account)
    session.commit()
    return account.id  # type: ignore[return-value]


def set_rep(session: Session, actor: Actor, **values: Any) -> None:
    user = session.get(User, actor.id)
    for name, value in values.items():
        setattr(user, name, value)
    session.add(user)
    session.commit()
