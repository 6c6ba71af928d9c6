"""The scorer stand-in: model, predict endpoint contract and overload simulation."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from standins.scorer.model import WEIGHTS_PATH, load_model, predict
from standins.scorer.server import Faults, ScorerState
from standins.services import LocalServices

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "prediction.schema.json"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServices]:
    local_dir = tmp_path_factory.mktemp("standins")
    with LocalServices(
        central_port=0, scorer_port=0, customers=300, local_dir=local_dir
    ) as running:
        yield running


def instance(customer: dict[str, Any], coupon: dict[str, Any]) -> dict[str, Any]:
    """The scorer's flat instance for a customer context and a catalogue coupon."""
    return {
        **customer,
        "coupon_id": coupon["coupon_id"],
        "department_id": coupon["department_id"],
        "coupon_mean_discount": coupon["mean_coupon_discount"],
        "coupon_mean_item_price": coupon["mean_item_price"],
    }


def all_instances(db_path: Path) -> list[dict[str, Any]]:
    """Every (customer, coupon) pair of the database."""
    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        customers = [dict(row) for row in conn.execute("SELECT * FROM customers")]
        coupons = [dict(row) for row in conn.execute("SELECT * FROM coupons")]
    return [instance(customer, coupon) for customer in customers for coupon in coupons]


def post(url: str, body: bytes) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)


def metrics(services: LocalServices) -> dict[str, int]:
    return requests.get(services.scorer_url.split("/v1/")[0] + "/metrics", timeout=5).json()


def test_predict_is_the_logistic_formula() -> None:
    weights = json.loads(WEIGHTS_PATH.read_text())
    income = weights["numeric"]["income_bracket"]
    logit = weights["bias"] + income["weight"] * (9 - income["center"]) / income["scale"]
    logit += weights["categorical"]["gender"]["F"]

    assert predict({"income_bracket": 9, "gender": "F"}) == round(1 / (1 + math.exp(-logit)), 6)


def test_missing_null_and_unknown_features_are_neutral() -> None:
    neutral = predict({})

    assert (
        predict({"family_size": None, "gender": "X", "department_id": 99, "customer_id": 5})
        == neutral
    )
    assert 0 < neutral < 1


def test_non_numeric_numeric_feature_is_rejected() -> None:
    with pytest.raises(ValueError, match="total_quantity"):
        predict({"total_quantity": "12"})


def test_weights_give_each_customer_a_few_coupons_above_0_2(services: LocalServices) -> None:
    above_by_customer_department: dict[tuple[int, int], list[bool]] = {}
    for pair in all_instances(services.db_path):
        key = (pair["customer_id"], pair["department_id"])
        above_by_customer_department.setdefault(key, []).append(predict(pair) > 0.2)
    flags = [above for group in above_by_customer_department.values() for above in group]
    some_not_all = [
        any(group) and not all(group) for group in above_by_customer_department.values()
    ]

    assert 0.2 <= sum(flags) / len(flags) <= 0.5
    assert sum(some_not_all) / len(some_not_all) >= 0.7


def test_predictions_follow_instance_order(services: LocalServices) -> None:
    instances = random.Random(0).sample(all_instances(services.db_path), 200)

    response = post(services.scorer_url, json.dumps({"instances": instances}).encode())

    assert response.status_code == 200
    assert response.json() == {"predictions": [predict(pair) for pair in instances]}


def test_instances_built_from_the_central_are_scored(services: LocalServices) -> None:
    customer = requests.get(f"{services.central_url}/customers/3/context", timeout=5).json()
    coupons = requests.get(f"{services.central_url}/departments/2/coupons", timeout=5).json()[
        "coupons"
    ]
    instances = [instance(customer, coupon) for coupon in reversed(coupons)]

    predictions = requests.post(
        services.scorer_url, json={"instances": instances}, timeout=5
    ).json()["predictions"]

    assert predictions == [predict(pair) for pair in instances]
    assert len(set(predictions)) > 1


def test_empty_batch_gives_no_predictions(services: LocalServices) -> None:
    assert post(services.scorer_url, b'{"instances": []}').json() == {"predictions": []}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"inputs": []}',
        b'{"instances": {"customer_id": 1}}',
        b'{"instances": [1]}',
        b'{"instances": [{}, "x"]}',
        b'{"instances": [{"family_size": "3"}]}',
    ],
)
def test_bad_body_is_400(services: LocalServices, body: bytes) -> None:
    response = post(services.scorer_url, body)

    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_keep_alive_connection_survives_errors(services: LocalServices) -> None:
    with requests.Session() as session:
        statuses = [
            session.post(services.scorer_url, data=body, timeout=5).status_code
            for body in (
                b"oops",
                b'{"instances": [{}]}',
                b'{"instances": 3}',
                b'{"instances": [{}]}',
            )
        ]

    assert statuses == [400, 200, 400, 200]


def test_metrics_count_requests_and_instances(services: LocalServices) -> None:
    before = metrics(services)
    post(services.scorer_url, b'{"instances": [{}, {}, {}]}')
    post(services.scorer_url, b"bad")

    after = metrics(services)

    assert after["requests"] - before["requests"] == 2
    assert after["instances"] - before["instances"] == 3
    assert after["rejected"] == before["rejected"]


def test_overloaded_scorer_answers_429_at_once(tmp_path: Path) -> None:
    latency_s, clients = 0.5, 6
    with LocalServices(
        central_port=0,
        scorer_port=0,
        customers=10,
        local_dir=tmp_path,
        scorer_latency_ms=500,
        scorer_max_concurrency=2,
    ) as services:
        with ThreadPoolExecutor(clients) as pool:
            responses = list(
                pool.map(
                    lambda _: post(services.scorer_url, b'{"instances": [{}]}'), range(clients)
                )
            )
        counters = metrics(services)

    ok = [r for r in responses if r.status_code == 200]
    rejected = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(rejected) == clients
    assert 2 <= len(ok) < clients
    assert counters["rejected"] == len(rejected)
    assert all(r.elapsed.total_seconds() < latency_s for r in rejected)
    assert all(r.elapsed.total_seconds() >= latency_s for r in ok)
    assert rejected[0].json()["error"] == "overloaded"


def test_schema_describes_every_model_feature() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    instance_fields = schema["$defs"]["instance"]["properties"]
    predictions = schema["$defs"]["response"]["properties"]["predictions"]

    assert set(load_model().features) | {"customer_id", "coupon_id"} == set(instance_fields)
    assert schema["$defs"]["request"]["required"] == ["instances"]
    assert predictions["items"] == {"type": "number", "minimum": 0, "maximum": 1}


def test_fault_draws_follow_the_rates_and_repeat_with_the_seed() -> None:
    faults = Faults(error_rate=0.2, timeout_rate=0.1, seed=7)
    draws = [ScorerState(load_model(), 0, 0, faults) for _ in range(2)]
    runs = [[state.draw_fault() for _ in range(2000)] for state in draws]

    assert runs[0] == runs[1]
    assert 0.17 < runs[0].count("error") / 2000 < 0.23
    assert 0.08 < runs[0].count("timeout") / 2000 < 0.12
    assert draws[0].metrics()["errors_injected"] == runs[0].count("error")
