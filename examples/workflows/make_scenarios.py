"""Writes the simulator scenarios of the two example workflows (quick.yaml, standard.yaml).

The documents the agents hand each other have the sizes of the multi-agent notes: architecture
8-15 KB, code 10-20 KB, test plan 5-12 KB, deployment manifests 8-15 KB, the orchestrator's workflow
state 3-8 KB; the analyst's brief and the PM's stories are small. Every text is generated from a fixed
seed, so running this again writes the same files::

    python examples/workflows/make_scenarios.py
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SERVICES = [
    "catalog", "cart", "checkout", "payments", "orders", "inventory", "shipping", "accounts", "search"
]  # fmt: skip
LATENCY = {"ttft_ms": 400, "tokens_per_second": 80, "jitter": 0.1}


def _fill(size: int, make: Any, rng: random.Random) -> str:
    parts: list[str] = []
    n = 0
    while sum(len(p) for p in parts) < size:
        parts.append(make(n, rng))
        n += 1
    return "".join(parts)[:size]


def architecture(size: int) -> str:
    def section(n: int, rng: random.Random) -> str:
        name = SERVICES[n % len(SERVICES)]
        deps = ", ".join(rng.sample(SERVICES, 2))
        return (
            f"## {name}-service (v{n // len(SERVICES) + 1})\n"
            f"Owns the {name} data in its own Postgres schema; publishes {name}.changed events.\n"
            f"Depends on: {deps}. Endpoints: GET /{name}/{{id}}, POST /{name}, PATCH /{name}/{{id}}.\n"
            f"Scaling: {rng.randint(2, 12)} replicas, p99 budget {rng.randint(80, 400)} ms, "
            f"timeouts {rng.randint(1, 5)} s with retries on idempotent calls only.\n\n"
        )

    return "# Checkout platform architecture\n\n" + _fill(size, section, random.Random(1))


def code(size: int) -> str:
    def function(n: int, rng: random.Random) -> str:
        name = SERVICES[n % len(SERVICES)]
        return (
            f"async def handle_{name}_{n}(request: Request) -> Response:\n"
            f'    """Serve {name} request #{n}."""\n'
            f"    body = await request.json()\n"
            f"    if not body.get('id'):\n"
            f"        return Response(status=400, text='an id is needed')\n"
            f"    item = await store.get('{name}', body['id'], timeout={rng.randint(1, 5)})\n"
            f"    return Response(status=200, json=item)\n\n"
        )

    return _fill(size, function, random.Random(2))


def test_plan(size: int) -> str:
    def case(n: int, rng: random.Random) -> str:
        name = SERVICES[n % len(SERVICES)]
        return (
            f"- scenario {n}: {name}\n  given a customer with {rng.randint(1, 9)} items in the cart\n"
            f"  when the {name} service answers after {rng.randint(50, 900)} ms\n"
            f"  then checkout completes once and the order is recorded exactly once\n"
        )

    return "Test plan\n\n" + _fill(size, case, random.Random(3))


def manifests(size: int) -> str:
    def manifest(n: int, rng: random.Random) -> str:
        name = SERVICES[n % len(SERVICES)]
        return (
            f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}-{n}\nspec:\n"
            f"  replicas: {rng.randint(2, 8)}\n  template:\n    spec:\n      containers:\n"
            f"        - name: {name}\n          image: registry.local/{name}:1.{n}.0\n"
            f"          resources: {{limits: {{cpu: {rng.randint(1, 4)}, memory: {rng.randint(1, 8)}Gi}}}}\n"
        )

    return _fill(size, manifest, random.Random(4))


def state(size: int, step: str) -> str:
    def line(n: int, rng: random.Random) -> str:
        service = SERVICES[n % len(SERVICES)]
        return f"- decision {n}: {service} keeps its own data; reviewed ({rng.randint(1, 99)})\n"

    return f"Workflow state before {step}\n\n" + _fill(size, line, random.Random(5 + len(step)))


def _to(receiver: str) -> str:
    return rf"^\[handoff from \S+ to {receiver}\]"


def _handoff(agent: str, task: str, document: str) -> dict[str, Any]:
    return {"tool_call": {"name": "handoff", "input": {"agent": agent, "task": task, "document": document}}}


def quick() -> dict[str, Any]:
    return {
        "scenarios": [
            {
                "name": "developer",
                "match": {"last_user": r"^(?!\[handoff)"},
                "latency": LATENCY,
                "turns": [
                    {
                        "blocks": [
                            {"text": "Here is the implementation; QA takes it from here."},
                            _handoff("qa", "Test the checkout handlers", code(14_000)),
                        ]
                    },
                    {"blocks": [{"text": "Implemented and tested: QA found no failures."}]},
                ],
            },
            {
                "name": "qa",
                "match": {"last_user": _to("qa")},
                "latency": LATENCY,
                "turns": [{"blocks": [{"text": "I ran 36 scenarios against the handlers: all pass."}]}],
            },
        ]
    }


def standard() -> dict[str, Any]:
    return {
        "scenarios": [
            {
                "name": "orchestrator",
                "match": {"last_user": r"^(?!\[handoff)", "tools": ["handoff"]},
                "latency": LATENCY,
                "turns": [
                    {"blocks": [_handoff("analyst", "Write the project brief", state(3_500, "the brief"))]},
                    {"blocks": [_handoff("pm", "Write the user stories", state(4_000, "the stories"))]},
                    {"blocks": [_handoff("architect", "Design the services", state(6_000, "the design"))]},
                    {"blocks": [{"text": "Brief, stories, design, code, tests and deployment are done."}]},
                ],
            },
            {
                "name": "analyst",
                "match": {"last_user": _to("analyst")},
                "latency": LATENCY,
                "turns": [{"blocks": [{"text": "Brief: a checkout platform for 2,000 orders a minute."}]}],
            },
            {
                "name": "pm",
                "match": {"last_user": _to("pm")},
                "latency": LATENCY,
                "turns": [
                    {"blocks": [{"text": "Stories: pay with a saved card; retry a failed payment once."}]}
                ],
            },
            {
                "name": "architect",
                "match": {"last_user": _to("architect")},
                "latency": LATENCY,
                "turns": [
                    {"blocks": [_handoff("developer", "Implement this architecture", architecture(12_000))]},
                    {"blocks": [{"text": "The architecture is implemented, tested and deployed."}]},
                ],
            },
            {
                "name": "developer",
                "match": {"last_user": _to("developer")},
                "latency": LATENCY,
                "turns": [
                    {"blocks": [_handoff("qa", "Test this implementation", code(15_000))]},
                    {"blocks": [{"text": "Implemented; QA and DevOps are done."}]},
                ],
            },
            {
                "name": "qa",
                "match": {"last_user": _to("qa")},
                "latency": LATENCY,
                "turns": [
                    {"blocks": [_handoff("devops", "Deploy what this plan tested", test_plan(9_000))]},
                    {"blocks": [{"text": "All scenarios pass; deployed."}]},
                ],
            },
            {
                "name": "devops",
                "match": {"last_user": _to("devops")},
                "latency": LATENCY,
                "turns": [
                    {
                        "blocks": [
                            {
                                "tool_call": {
                                    "name": "blackboard_write",
                                    "input": {"key": "deployment", "value": manifests(11_000)},
                                }
                            }
                        ]
                    },
                    {"blocks": [{"text": "The manifests are on the blackboard under 'deployment'."}]},
                ],
            },
        ]
    }


def main() -> None:
    header = (
        "# Written by make_scenarios.py (the documents have the multi-agent notes' sizes). Do not edit.\n"
    )
    for name, book in (("quick", quick()), ("standard", standard())):
        text = yaml.safe_dump(book, sort_keys=False, allow_unicode=True, width=100)
        (HERE / f"{name}.yaml").write_text(header + text, encoding="utf-8")


if __name__ == "__main__":
    main()
