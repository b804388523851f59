// An order and its job in one transaction, with node-postgres (`npm install pg`).
// DATABASE_URL: the application's login role (a member of jobline_app).
import pg from "pg";

const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();

async function placeOrder(orderId, { fail = false } = {}) {
  await client.query("BEGIN");
  try {
    await client.query("INSERT INTO orders (id) VALUES ($1)", [orderId]);
    const { rows } = await client.query(
      "SELECT job_id, already_existed FROM enqueue_job($1, $2, $3, $4)",
      ["acme", "sleep", { ms: 10, orderId }, { idempotency_key: `order-${orderId}` }],
    );
    if (fail) throw new Error("payment declined");
    await client.query("COMMIT");
    return rows[0].job_id;
  } catch (err) {
    await client.query("ROLLBACK");
    throw err;
  }
}

const jobId = await placeOrder("o-1001");
console.log("committed: order o-1001 with job", jobId);
await placeOrder("o-1002", { fail: true }).catch((err) => console.log("rolled back:", err.message));
const { rows } = await client.query(
  "SELECT count(*)::int AS n FROM app_jobs WHERE idempotency_key = 'order-o-1002'",
);
console.log("jobs for o-1002:", rows[0].n);
await client.end();
