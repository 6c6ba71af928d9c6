"""The central stand-in: generated database and HTTP endpoints, against real server processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from standins.central.generate import DEPARTMENTS, ensure_database, generate_database
from standins.services import LocalServices

CUSTOMERS = 300
CUSTOMER_COLUMNS = {
    "customer_id", "age_range", "marital_status", "family_size", "no_of_children", "income_bracket", "gender",
    "mean_discount_used", "unique_items_bought", "mean_selling_price_paid", "mean_quantity", "total_discount_used",
    "total_coupons_used", "total_price_paid", "total_quantity",
}  # fmt: skip


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServices]:
    local_dir = tmp_path_factory.mktemp("standins")
    with LocalServices(
        central_port=0, scorer_port=0, customers=CUSTOMERS, local_dir=local_dir
    ) as running:
        yield running


def get(services: LocalServices, path: str) -> requests.Response:
    return requests.get(services.central_url + path, timeout=5)


def rows(db_path: Path, table: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def test_health(services: LocalServices) -> None:
    assert get(services, "/health").json() == {"status": "ok"}


def test_customer_context_is_the_customer_row(services: LocalServices) -> None:
    with closing(sqlite3.connect(services.db_path)) as conn:
        conn.row_factory = sqlite3.Row
        expected = dict(conn.execute("SELECT * FROM customers WHERE customer_id = 7").fetchone())

    response = get(services, "/customers/7/context")

    assert response.status_code == 200
    assert response.json() == expected
    assert set(expected) == CUSTOMER_COLUMNS


def test_customer_values_are_plausible(services: LocalServices) -> None:
    for customer_id in (1, CUSTOMERS // 2, CUSTOMERS):
        context = get(services, f"/customers/{customer_id}/context").json()
        assert context["customer_id"] == customer_id
        assert context["age_range"] in {"18-25", "26-35", "36-45", "46-55", "56-70", "70+"}
        assert context["marital_status"] in {"Married", "Single"}
        assert context["gender"] in {"F", "M"}
        assert 1 <= context["family_size"] <= 5
        assert 0 <= context["no_of_children"] <= min(3, context["family_size"] - 1)
        assert 1 <= context["income_bracket"] <= 12
        assert context["total_quantity"] >= 1


@pytest.mark.parametrize("customer_id", [0, CUSTOMERS + 1, -3])
def test_unknown_customer_is_404(services: LocalServices, customer_id: int) -> None:
    response = get(services, f"/customers/{customer_id}/context")

    assert response.status_code == 404
    assert response.json() == {"error": "unknown customer", "customer_id": customer_id}


@pytest.mark.parametrize("raw_id", ["abc", "1.5", "%201"])
def test_non_integer_customer_id_is_400(services: LocalServices, raw_id: str) -> None:
    response = get(services, f"/customers/{raw_id}/context")

    assert response.status_code == 400
    assert "error" in response.json()


def test_each_department_has_10_to_50_coupons_in_id_order(services: LocalServices) -> None:
    coupon_ids: list[int] = []
    for department_id in DEPARTMENTS:
        body = get(services, f"/departments/{department_id}/coupons").json()
        ids = [coupon["coupon_id"] for coupon in body["coupons"]]
        assert body["department_id"] == department_id
        assert 10 <= len(ids) <= 50
        assert ids == sorted(ids)
        assert {coupon["department_id"] for coupon in body["coupons"]} == {department_id}
        assert set(body["coupons"][0]) == {
            "coupon_id",
            "department_id",
            "mean_coupon_discount",
            "mean_item_price",
        }
        coupon_ids += ids
    assert len(coupon_ids) == len(set(coupon_ids))


def test_unknown_department_is_404(services: LocalServices) -> None:
    response = get(services, "/departments/6/coupons")

    assert response.status_code == 404
    assert response.json() == {"error": "unknown department", "department_id": 6}


def test_catalogue_has_the_five_departments_coupons(services: LocalServices) -> None:
    catalogue = get(services, "/coupons").json()["departments"]

    assert list(catalogue) == ["1", "2", "3", "4", "5"]
    for department_id, coupons in catalogue.items():
        assert coupons == get(services, f"/departments/{department_id}/coupons").json()["coupons"]


def test_unknown_path_is_404(services: LocalServices) -> None:
    assert get(services, "/customers").status_code == 404


def test_departments_are_the_fixed_five(tmp_path: Path) -> None:
    generate_database(tmp_path / "c.sqlite3", 5, seed=42)

    assert rows(tmp_path / "c.sqlite3", "departments") == [
        (1, "Women"), (2, "Men"), (3, "Girls"), (4, "Boys"), (5, "Sport"),
    ]  # fmt: skip


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "first.sqlite3", tmp_path / "second.sqlite3"
    generate_database(first, 200, seed=7)
    generate_database(second, 200, seed=7)

    for table in ("customers", "departments", "coupons"):
        assert rows(first, table) == rows(second, table)
    assert first.read_bytes() == second.read_bytes()


def test_another_seed_gives_other_customers(tmp_path: Path) -> None:
    generate_database(tmp_path / "a.sqlite3", 50, seed=1)
    generate_database(tmp_path / "b.sqlite3", 50, seed=2)

    assert rows(tmp_path / "a.sqlite3", "customers") != rows(tmp_path / "b.sqlite3", "customers")


def test_catalogue_does_not_depend_on_the_customer_count(tmp_path: Path) -> None:
    generate_database(tmp_path / "small.sqlite3", 10, seed=42)
    generate_database(tmp_path / "large.sqlite3", 500, seed=42)

    assert rows(tmp_path / "small.sqlite3", "coupons") == rows(
        tmp_path / "large.sqlite3", "coupons"
    )


def test_ensure_database_regenerates_only_on_a_new_stamp(tmp_path: Path) -> None:
    db_path = tmp_path / "central" / "central.sqlite3"

    assert ensure_database(db_path, 20, seed=42)
    assert not ensure_database(db_path, 20, seed=42)
    assert ensure_database(db_path, 30, seed=42)
    assert len(rows(db_path, "customers")) == 30
    assert list(db_path.parent.iterdir()) == [db_path]


def test_busy_port_is_an_error_and_leaves_nothing_running(
    services: LocalServices, tmp_path: Path
) -> None:
    busy_port = urlsplit(services.scorer_url).port
    others = LocalServices(central_port=0, scorer_port=busy_port, customers=10, local_dir=tmp_path)

    with pytest.raises(RuntimeError, match=f"port {busy_port}"):
        others.start()
    assert others.pids == {}
