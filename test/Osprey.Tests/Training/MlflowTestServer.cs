using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Osprey.Tests.Training;

/// <summary>
/// An in-process MLflow tracking server (HttpListener on 127.0.0.1): the REST endpoints a training logs through, with
/// MLflow's request and response shapes, refusing what MLflow refuses — an unknown experiment or run (404
/// RESOURCE_DOES_NOT_EXIST), a second experiment of a name (400 RESOURCE_ALREADY_EXISTS), a log-batch over 100 params, 1000
/// metrics, 100 tags or 1000 items, a param value over 6000 characters or a changed param value, a metric without key, value
/// or timestamp (400 INVALID_PARAMETER_VALUE) — and the artifact proxy (PUT api/2.0/mlflow-artifacts/artifacts/…).
/// </summary>
internal sealed class MlflowTestServer : IDisposable
{
    public sealed class Run(string id, string experimentId, string name)
    {
        public string Id { get; } = id;
        public string ExperimentId { get; } = experimentId;
        public string Name { get; } = name;
        public string Status { get; set; } = "RUNNING";
        public long? EndTime { get; set; }
        public Dictionary<string, string> Params { get; } = new();
        public List<(string Key, double Value, long Step)> Metrics { get; } = new();
        public Dictionary<string, string> Tags { get; } = new();
        public string ArtifactUri => $"mlflow-artifacts:/{ExperimentId}/{Id}/artifacts";
    }

    readonly HttpListener _listener = new();
    readonly object _gate = new();
    public Dictionary<string, string> Experiments { get; } = new();          // name → id
    public Dictionary<string, Run> Runs { get; } = new();
    public ConcurrentDictionary<string, byte[]> Artifacts { get; } = new();   // path after mlflow-artifacts/artifacts/
    public List<(int Params, int Metrics)> Batches { get; } = new();
    public List<string> Refusals { get; } = new();

    public MlflowTestServer()
    {
        Port = FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _ = Task.Run(Serve);
    }

    public int Port { get; }

    public string Uri => $"http://127.0.0.1:{Port}";

    /// <summary>A port nothing listens on (taken and released at once).</summary>
    public static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            var (status, body) = Handle(context.Request);
            byte[] bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        }
    }

    (int, JsonNode) Handle(HttpListenerRequest request)
    {
        string path = request.Url!.AbsolutePath;
        lock (_gate)
        {
            try
            {
                if (request.HttpMethod == "PUT" && path.StartsWith("/api/2.0/mlflow-artifacts/artifacts/", StringComparison.Ordinal))
                {
                    using var buffer = new MemoryStream();
                    request.InputStream.CopyTo(buffer);
                    Artifacts[System.Uri.UnescapeDataString(path["/api/2.0/mlflow-artifacts/artifacts/".Length..])] = buffer.ToArray();
                    return (200, new JsonObject());
                }
                JsonObject body = request.HasEntityBody
                    ? JsonNode.Parse(new StreamReader(request.InputStream).ReadToEnd())!.AsObject() : new JsonObject();
                return (request.HttpMethod, path) switch
                {
                    ("GET", "/api/2.0/mlflow/experiments/get-by-name") => GetExperiment(request.QueryString["experiment_name"]),
                    ("POST", "/api/2.0/mlflow/experiments/create") => CreateExperiment(body),
                    ("POST", "/api/2.0/mlflow/runs/create") => CreateRun(body),
                    ("POST", "/api/2.0/mlflow/runs/log-batch") => LogBatch(body),
                    ("POST", "/api/2.0/mlflow/runs/update") => UpdateRun(body),
                    _ => Error(404, "ENDPOINT_NOT_FOUND", $"No API endpoint found for {request.HttpMethod} {path}"),
                };
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
            {
                return Error(400, "MALFORMED_REQUEST", e.Message);
            }
        }
    }

    (int, JsonNode) Error(int status, string code, string message)
    {
        Refusals.Add($"{status} {code}: {message}");
        return (status, new JsonObject { ["error_code"] = code, ["message"] = message });
    }

    (int, JsonNode) GetExperiment(string? name) => name is not null && Experiments.TryGetValue(name, out var id)
        ? (200, new JsonObject { ["experiment"] = new JsonObject
            { ["experiment_id"] = id, ["name"] = name, ["artifact_location"] = $"mlflow-artifacts:/{id}", ["lifecycle_stage"] = "active" } })
        : Error(404, "RESOURCE_DOES_NOT_EXIST", $"Could not find experiment with name '{name}'");

    (int, JsonNode) CreateExperiment(JsonObject body)
    {
        string? name = (string?)body["name"];
        if (string.IsNullOrEmpty(name)) return Error(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'name'.");
        if (Experiments.ContainsKey(name)) return Error(400, "RESOURCE_ALREADY_EXISTS", $"Experiment '{name}' already exists.");
        string id = (Experiments.Count + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Experiments[name] = id;
        return (200, new JsonObject { ["experiment_id"] = id });
    }

    (int, JsonNode) CreateRun(JsonObject body)
    {
        string? experiment = (string?)body["experiment_id"];
        if (experiment is null || !Experiments.ContainsValue(experiment))
            return Error(404, "RESOURCE_DOES_NOT_EXIST", $"No Experiment with id={experiment} exists");
        var run = new Run(Guid.NewGuid().ToString("N"), experiment, (string?)body["run_name"] ?? "");
        foreach (var tag in body["tags"]?.AsArray() ?? new JsonArray()) run.Tags[(string)tag!["key"]!] = (string)tag["value"]!;
        Runs[run.Id] = run;
        return (200, new JsonObject { ["run"] = new JsonObject
        {
            ["info"] = Info(run, (long?)body["start_time"]),
            ["data"] = new JsonObject { ["tags"] = new JsonArray(run.Tags.Select(t => (JsonNode)new JsonObject { ["key"] = t.Key, ["value"] = t.Value }).ToArray()) },
        } });
    }

    static JsonObject Info(Run run, long? start) => new()
    {
        ["run_id"] = run.Id, ["run_uuid"] = run.Id, ["experiment_id"] = run.ExperimentId, ["run_name"] = run.Name,
        ["status"] = run.Status, ["start_time"] = start, ["end_time"] = run.EndTime, ["artifact_uri"] = run.ArtifactUri,
        ["lifecycle_stage"] = "active",
    };

    (int, JsonNode) LogBatch(JsonObject body)
    {
        if (!Runs.TryGetValue((string?)body["run_id"] ?? "", out var run))
            return Error(404, "RESOURCE_DOES_NOT_EXIST", $"Run '{body["run_id"]}' not found");
        var parameters = body["params"]?.AsArray() ?? new JsonArray();
        var metrics = body["metrics"]?.AsArray() ?? new JsonArray();
        var tags = body["tags"]?.AsArray() ?? new JsonArray();
        if (parameters.Count > 100 || metrics.Count > 1000 || tags.Count > 100 || parameters.Count + metrics.Count + tags.Count > 1000)
            return Error(400, "INVALID_PARAMETER_VALUE", $"A batch logging request can contain at most 1000 metrics, 100 params, 100 tags and 1000 items; got {metrics.Count}, {parameters.Count}, {tags.Count}");
        foreach (var p in parameters)
        {
            string key = (string)p!["key"]!, value = (string)p["value"]!;
            if (value.Length > 6000) return Error(400, "INVALID_PARAMETER_VALUE", $"Param value for '{key}' exceeded length limit of 6000");
            if (run.Params.TryGetValue(key, out var old) && old != value)
                return Error(400, "INVALID_PARAMETER_VALUE", $"Changing param values is not allowed. Param with key='{key}' was already logged with value='{old}' for run ID='{run.Id}'. Attempted logging new value '{value}'.");
        }
        foreach (var m in metrics)
            if (m!["key"] is null || m["value"] is null || m["timestamp"] is null)
                return Error(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'metrics[0].key/value/timestamp'");
        foreach (var p in parameters) run.Params[(string)p!["key"]!] = (string)p["value"]!;
        foreach (var m in metrics) run.Metrics.Add(((string)m!["key"]!, (double)m["value"]!, (long?)m["step"] ?? 0));
        Batches.Add((parameters.Count, metrics.Count));
        return (200, new JsonObject());
    }

    (int, JsonNode) UpdateRun(JsonObject body)
    {
        if (!Runs.TryGetValue((string?)body["run_id"] ?? "", out var run))
            return Error(404, "RESOURCE_DOES_NOT_EXIST", $"Run '{body["run_id"]}' not found");
        string status = (string?)body["status"] ?? run.Status;
        if (status is not ("RUNNING" or "SCHEDULED" or "FINISHED" or "FAILED" or "KILLED"))
            return Error(400, "INVALID_PARAMETER_VALUE", $"Invalid value {status} for parameter 'status'");
        run.Status = status;
        run.EndTime = (long?)body["end_time"];
        return (200, new JsonObject { ["run_info"] = Info(run, null) });
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
    }
}
