// app/api/generation/story-script/route.ts in a Next.js App Router app: the
// seed's `POST /api/generation/story-script`, now enqueueing through jobline.
//
// Like jobline's own route of that name, it creates one `story_script` job
// whose correlation_id is a new story id, with the payload the `story_script`
// handler reads ({theme, tone, ageRange, storyId}), and answers 202 with
// {ok, storyId, jobIds} at once: the worker writes the script later, and the
// caller polls GET /v1/jobs/{id} (or the app's own status route).
//
// An incoming `Idempotency-Key` is forwarded, and the story id is derived
// from it, so a client repeating its request (a double click, a retried
// fetch) gets the same story and job back instead of a second generation.
//
// Only Web APIs and the client: it runs on the Node.js and the edge runtime
// (`export const runtime = "edge"` works as well). In an app, import from
// "@jobline/client"; this copy imports the package's source so it is
// type-checked (and run by the tests) without a Next.js install.
import { JoblineError, createClient } from "../../src/index.js";
import type { components } from "../../src/index.js";

type StoryScriptRequest = components["schemas"]["StoryScriptRequest"];
type StoryScriptResponse = components["schemas"]["StoryScriptResponse"];

const jobline = createClient({
  baseUrl: process.env.JOBLINE_URL ?? "http://127.0.0.1:8080",
  apiKey: process.env.JOBLINE_API_KEY ?? "",
  timeoutMs: 5_000,
  retries: 2,
});

export async function POST(req: Request): Promise<Response> {
  let input: unknown;
  try {
    input = await req.json();
  } catch {
    return problem(400, "invalid_json", "request body is not valid JSON");
  }
  const refusal = check(input);
  if (refusal) return problem(422, "validation_failed", refusal);
  const { theme, tone, ageRange, initiatedBy } = input as StoryScriptRequest;

  const idempotencyKey = req.headers.get("Idempotency-Key") ?? undefined;
  const storyId = idempotencyKey ? await uuidFrom(`story-script:${idempotencyKey}`) : crypto.randomUUID();
  try {
    const job = await jobline.createJob(
      {
        type: "story_script",
        // The job's own initiated_by is the API key's (CreateJob has no such
        // field), so the app's user travels in the payload.
        payload: { theme, tone: tone ?? null, ageRange: ageRange ?? null, storyId, ...(initiatedBy ? { initiatedBy } : {}) },
        correlation_id: storyId,
      },
      { idempotencyKey },
    );
    const body: StoryScriptResponse = { ok: true, storyId, jobIds: [job.id] };
    return Response.json(body, { status: 202 });
  } catch (err) {
    if (err instanceof JoblineError && (err.status === 409 || err.status === 422)) {
      // The caller's fault (a key reused for another story, say): say so as jobline did.
      return problem(err.status, err.code, err.message);
    }
    // jobline down or misconfigured (a wrong key is a 401 here): not the caller's fault.
    console.error("story-script: could not enqueue", err);
    return problem(502, "unavailable", "could not start the generation; try again");
  }
}

/** The same rules as jobline's route (StoryScriptRequest): a message, or null when fine. */
function check(input: unknown): string | null {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return "body: a JSON object is required";
  const fields = input as Record<string, unknown>;
  const limits: Record<string, number> = { theme: 500, tone: 100, ageRange: 50, initiatedBy: 200 };
  for (const name of Object.keys(fields)) {
    if (!(name in limits)) return `${name}: unknown field`;
  }
  if (fields.theme === undefined) return "theme: required";
  for (const [name, max] of Object.entries(limits)) {
    const value = fields[name];
    if (value === undefined) continue;
    if (typeof value !== "string") return `${name}: a string is required`;
    if (value.length > max) return `${name}: at most ${max} characters`;
    if (name === "theme" && value === "") return "theme: must not be empty";
  }
  return null;
}

/** A stable UUID (version 8, from SHA-256) for a string, with Web Crypto only. */
async function uuidFrom(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  const b = digest.slice(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function problem(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
