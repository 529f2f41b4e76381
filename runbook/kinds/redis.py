"""redis.ping: Redis answers PING (through the transport's tunnel), and optionally its memory
settings are what the 4 GB plan expects (seed 002: Redis capped at 300 MB). Read-only."""

from __future__ import annotations

from typing import Any

from runbook.actions import Client, Operation
from runbook.facts.compose import parse_memory
from runbook.kinds.base import Outcome, StepContext, StepGen, StepKind, register
from runbook.render.secrets import mask_credentials

MIB = 1024 * 1024
PING = Operation("redis.ping", "runbook.execute.clients.redis:ping", library="redis")


@register
class RedisPing(StepKind):
    name = "redis.ping"
    registers = {
        "latency_ms": "PING round trip",
        "version": "redis version",
        "used_memory": "bytes in use",
        "maxmemory": "the limit in bytes (0: none)",
        "maxmemory_policy": "eviction policy",
    }
    description = "PING a Redis server; optionally check maxmemory (set, at most N) and memory in use."
    schema = {
        "type": "object",
        "properties": {
            "url": {
                "type": "string",
                "pattern": "^rediss?://",
                "description": "redis://[:password@]host:port/db",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds (default 5)"},
            "maxmemory_max": {
                "type": ["number", "string"],
                "description": "maxmemory must be set and at most this (MB, or 300m / 1g)",
            },
            "max_used_percent": {"type": "number", "minimum": 0, "maximum": 100},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def run(self, args: dict[str, Any], ctx: StepContext) -> StepGen:
        url = str(args["url"])
        shown = mask_credentials(url)
        params = {"url": url, "timeout": float(args.get("timeout", 5)), "info": True}
        res = yield Client(PING, params)
        if not res.get("ok"):
            return Outcome.failure(f"{shown}: {res.get('error') or 'no PONG'}", command=f"PING {shown}")
        used, maxmem = int(res.get("used_memory") or 0), int(res.get("maxmemory") or 0)
        data = {
            k: res.get(k) for k in ("latency_ms", "version", "used_memory", "maxmemory", "maxmemory_policy")
        }
        summary = (
            f"{shown}: PONG in {res.get('latency_ms')} ms (redis {res.get('version')}, "
            f"{used // MIB} MB used, maxmemory {f'{maxmem // MIB} MB' if maxmem else 'unlimited'}"
            f"{', ' + str(res.get('maxmemory_policy')) if maxmem else ''})"
        )
        problems = []
        if args.get("maxmemory_max") is not None:
            try:
                limit = parse_memory(args["maxmemory_max"], default_unit="m")
            except ValueError as exc:
                return Outcome.failure(f"maxmemory_max: {exc}")
            if not maxmem:
                problems.append(f"maxmemory is not set (unlimited); expected at most {limit // MIB} MB")
            elif maxmem > limit:
                problems.append(f"maxmemory {maxmem // MIB} MB > allowed {limit // MIB} MB")
        if args.get("max_used_percent") is not None and maxmem:
            pct = 100.0 * used / maxmem
            if pct > float(args["max_used_percent"]):
                problems.append(f"{pct:.1f}% of maxmemory used > {args['max_used_percent']}%")
        if problems:
            return Outcome.failure(f"{'; '.join(problems)} ({summary})", data=data, command=f"PING {shown}")
        return Outcome.success(summary, data=data, command=f"PING {shown}")
