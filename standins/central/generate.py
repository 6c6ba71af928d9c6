"""Deterministic generator of the central's SQLite database (customers, departments, coupons).

The same ``seed`` and ``customers`` always yield the same rows. The coupon catalogue is drawn
before the customers, so it depends on the seed only, not on the number of customers.

    python -m standins.central.generate --customers 10000 --seed 42
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB_PATH = REPO_ROOT / ".local" / "central" / "central.sqlite3"
DEFAULT_SEED = 42
DEFAULT_CUSTOMERS = 10_000
# Bump when the generation logic changes, so existing databases are regenerated.
GENERATOR_VERSION = 1

DEPARTMENTS = {1: "Women", 2: "Men", 3: "Girls", 4: "Boys", 5: "Sport"}
_DEPARTMENT_ITEM_PRICE = {1: 45.0, 2: 40.0, 3: 25.0, 4: 25.0, 5: 55.0}
AGE_RANGES = ("18-25", "26-35", "36-45", "46-55", "56-70", "70+")
_AGE_WEIGHTS = (0.12, 0.25, 0.25, 0.18, 0.14, 0.06)
_MARRIED_SHARE = {
    "18-25": 0.15,
    "26-35": 0.5,
    "36-45": 0.65,
    "46-55": 0.65,
    "56-70": 0.6,
    "70+": 0.5,
}
_INCOME_MEAN = {"18-25": 3.0, "26-35": 5.0, "36-45": 6.5, "46-55": 7.0, "56-70": 5.5, "70+": 4.0}

SCHEMA = """
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    age_range TEXT NOT NULL,
    marital_status TEXT NOT NULL,
    family_size INTEGER NOT NULL,
    no_of_children INTEGER NOT NULL,
    income_bracket INTEGER NOT NULL,
    gender TEXT NOT NULL,
    mean_discount_used REAL NOT NULL,
    unique_items_bought INTEGER NOT NULL,
    mean_selling_price_paid REAL NOT NULL,
    mean_quantity REAL NOT NULL,
    total_discount_used REAL NOT NULL,
    total_coupons_used INTEGER NOT NULL,
    total_price_paid REAL NOT NULL,
    total_quantity INTEGER NOT NULL
);
CREATE TABLE departments (department_id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE coupons (
    coupon_id INTEGER PRIMARY KEY,
    department_id INTEGER NOT NULL REFERENCES departments (department_id),
    mean_coupon_discount REAL NOT NULL,
    mean_item_price REAL NOT NULL
);
CREATE INDEX coupons_by_department ON coupons (department_id, coupon_id);
CREATE TABLE stamp (seed INTEGER NOT NULL, customers INTEGER NOT NULL, generator_version INTEGER NOT NULL);
"""


def ensure_database(
    db_path: Path, customers: int = DEFAULT_CUSTOMERS, seed: int = DEFAULT_SEED
) -> bool:
    """Generate ``db_path`` unless it already holds this seed/size; return whether it was written."""
    if read_stamp(db_path) == (seed, customers, GENERATOR_VERSION):
        return False
    generate_database(db_path, customers, seed)
    return True


def read_stamp(db_path: Path) -> tuple[int, int, int] | None:
    """The ``(seed, customers, generator_version)`` a database was generated with, if readable."""
    if not db_path.is_file():
        return None
    try:
        with closing(connect_read_only(db_path)) as conn:
            row = conn.execute("SELECT seed, customers, generator_version FROM stamp").fetchone()
    except sqlite3.Error:
        return None
    return tuple(row) if row else None


def connect_read_only(db_path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open ``db_path`` read-only (the central never writes)."""
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    return sqlite3.connect(uri, uri=True, check_same_thread=check_same_thread)


def generate_database(db_path: Path, customers: int, seed: int) -> None:
    """Write a fresh database to a temporary file, then atomically rename it to ``db_path``."""
    if customers < 1:
        raise ValueError(f"customers must be positive, got {customers}")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = db_path.with_name(f"{db_path.name}.tmp-{os.getpid()}")
    tmp_path.unlink(missing_ok=True)
    try:
        _write_database(tmp_path, customers, seed)
        os.replace(tmp_path, db_path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_database(path: Path, customers: int, seed: int) -> None:
    rng = random.Random(seed)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(SCHEMA)
        conn.executemany("INSERT INTO departments VALUES (?, ?)", DEPARTMENTS.items())
        conn.executemany("INSERT INTO coupons VALUES (?, ?, ?, ?)", list(_coupons(rng)))
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_customer(customer_id, rng) for customer_id in range(1, customers + 1)),
        )
        conn.execute("INSERT INTO stamp VALUES (?, ?, ?)", (seed, customers, GENERATOR_VERSION))


def _coupons(rng: random.Random) -> Iterator[tuple[int, int, float, float]]:
    """10 to 50 coupons per department, ids numbered across departments from 1."""
    coupon_id = 0
    for department_id, typical_price in _DEPARTMENT_ITEM_PRICE.items():
        for _ in range(rng.randint(10, 50)):
            coupon_id += 1
            item_price = typical_price * rng.lognormvariate(0.0, 0.35)
            discount = item_price * rng.uniform(0.05, 0.40)
            yield coupon_id, department_id, round(discount, 4), round(item_price, 4)


def _customer(customer_id: int, rng: random.Random) -> tuple[Any, ...]:
    """One customer row: demographics first, then purchase aggregates that depend on them."""
    age_range = rng.choices(AGE_RANGES, _AGE_WEIGHTS)[0]
    married = rng.random() < _MARRIED_SHARE[age_range]
    if married:
        family_size = rng.choices((2, 3, 4, 5), (0.35, 0.30, 0.22, 0.13))[0]
    else:
        family_size = rng.choices((1, 2, 3), (0.60, 0.25, 0.15))[0]
    adults = 2 if married else 1
    no_of_children = min(3, max(0, family_size - adults - (rng.random() < 0.2)))
    income_bracket = min(12, max(1, round(rng.gauss(_INCOME_MEAN[age_range], 2.5))))
    gender = "F" if rng.random() < 0.55 else "M"
    return (
        customer_id,
        age_range,
        "Married" if married else "Single",
        family_size,
        no_of_children,
        income_bracket,
        gender,
        *_purchase_aggregates(no_of_children, income_bracket, rng),
    )


def _purchase_aggregates(children: int, income: int, rng: random.Random) -> tuple[Any, ...]:
    """Purchase history: lines bought, prices, quantities, discounts and coupons used."""
    lines = max(10, round(rng.lognormvariate(5.3, 0.6)))
    unique_items_bought = max(5, round(lines * rng.uniform(0.4, 0.9)))
    total_quantity = max(lines, round(lines * (1.0 + rng.expovariate(1 / 0.4))))
    mean_selling_price_paid = math.exp(rng.gauss(math.log(40.0 + 6.0 * income), 0.25))
    total_price_paid = mean_selling_price_paid * total_quantity * rng.uniform(0.95, 1.05)
    coupon_rate = min(
        0.6, max(0.0, rng.betavariate(1.5, 12.0) + 0.02 * children - 0.005 * (income - 6))
    )
    total_coupons_used = round(lines * coupon_rate)
    mean_discount_used = (
        mean_selling_price_paid * (0.02 + 0.5 * coupon_rate) * rng.uniform(0.8, 1.2)
    )
    return (
        round(mean_discount_used, 4),
        unique_items_bought,
        round(mean_selling_price_paid, 4),
        round(total_quantity / lines, 4),
        round(mean_discount_used * lines, 4),
        total_coupons_used,
        round(total_price_paid, 4),
        total_quantity,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: generate the database unless it is already up to date."""
    parser = argparse.ArgumentParser(
        prog="python -m standins.central.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    args = parser.parse_args(argv)
    if args.force:
        generate_database(args.db, args.customers, args.seed)
    elif not ensure_database(args.db, args.customers, args.seed):
        print(f"{args.db} is up to date (seed {args.seed}, {args.customers} customers)")
        return
    print(f"wrote {args.db} (seed {args.seed}, {args.customers} customers)")


if __name__ == "__main__":
    main()
