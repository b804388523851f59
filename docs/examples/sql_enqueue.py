# An order and its job in one transaction, with psycopg 3 (`pip install "psycopg[binary]"`).
# DATABASE_URL: the application's login role (a member of jobline_app).
import os

import psycopg
from psycopg.types.json import Jsonb


def place_order(conn, order_id, fail=False):
    with conn.transaction():  # commits on success, rolls back on an exception
        conn.execute("INSERT INTO orders (id) VALUES (%s)", (order_id,))
        job_id, _ = conn.execute(
            "SELECT job_id, already_existed FROM enqueue_job(%s, %s, %s, %s)",
            ("acme", "sleep", Jsonb({"ms": 10, "orderId": order_id}),
             Jsonb({"idempotency_key": f"order-{order_id}"})),
        ).fetchone()
        if fail:
            raise RuntimeError("payment declined")
        return job_id


# prepare_threshold=None: no server-side prepared statements, for a
# transaction-mode PgBouncer that cannot carry them.
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, prepare_threshold=None) as conn:
    print("committed: order o-2001 with job", place_order(conn, "o-2001"))
    try:
        place_order(conn, "o-2002", fail=True)
    except RuntimeError as err:
        print("rolled back:", err)
    (n,) = conn.execute(
        "SELECT count(*) FROM app_jobs WHERE idempotency_key = 'order-o-2002'"
    ).fetchone()
    print("jobs for o-2002:", n)
