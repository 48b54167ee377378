// Same origin: behind the env's router /api goes to the backend, locally serve.py proxies it.
function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = String(text); // report titles are user input: never innerHTML
  row.appendChild(td);
}

async function load() {
  const health = await fetch("/api/health").then((r) => r.json()).catch(() => null);
  document.getElementById("health").textContent = health && health.database
    ? `env ${health.env} · database ${health.database.kind} ${health.database.ok ? "ok" : "down"}`
    : "backend unreachable";
  const reports = await fetch("/api/reports").then((r) => (r.ok ? r.json() : [])).catch(() => []);
  const body = document.getElementById("reports");
  body.replaceChildren();
  for (const report of reports) {
    const row = document.createElement("tr");
    cell(row, report.id);
    cell(row, report.title);
    cell(row, report.amount);
    body.appendChild(row);
  }
}

load();
