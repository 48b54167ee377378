async function load() {
  const health = await fetch("/api/health").then((r) => r.json()).catch(() => null);
  document.getElementById("health").textContent = health
    ? `env ${health.env} · database ${health.database.kind} ${health.database.ok ? "ok" : "down"}`
    : "backend unreachable";
  const reports = await fetch("/api/reports").then((r) => r.json()).catch(() => []);
  document.getElementById("reports").innerHTML = reports
    .map((r) => `<tr><td>${r.id}</td><td>${r.title}</td><td>${r.amount}</td></tr>`)
    .join("");
}
load();
