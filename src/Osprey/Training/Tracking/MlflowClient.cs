using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Osprey.Training.Tracking;

/// <summary>An MLflow server's refusal: the HTTP status and MLflow's <c>error_code</c> (e.g. <c>RESOURCE_ALREADY_EXISTS</c>).</summary>
public sealed class MlflowException(string message, int status, string? errorCode) : Exception(message)
{
    /// <summary>The HTTP status (0 when no answer came).</summary>
    public int Status { get; } = status;

    /// <summary>MLflow's <c>error_code</c>, or null.</summary>
    public string? ErrorCode { get; } = errorCode;
}

/// <summary>One metric value: MLflow's <c>Metric</c> (key, value, timestamp in ms, step).</summary>
public sealed record MlflowMetric(string Key, double Value, long Timestamp, long Step);

/// <summary>
/// The few calls of MLflow's REST API (2.0) that tracking a training needs, over <see cref="HttpClient"/> and
/// System.Text.Json: MLflow has no official .NET client, and these six requests are all Ultralytics' callback makes through
/// the Python one. Experiments by name (created when missing), runs (create, log-batch, update) and artifacts through the
/// tracking server's artifact proxy (<c>mlflow server --serve-artifacts</c>, the default since MLflow 2.0). Every call is
/// synchronous (the trainer's callbacks are) and throws <see cref="MlflowException"/> when the server refuses.
/// </summary>
public sealed class MlflowClient : IDisposable
{
    /// <summary>MLflow's log-batch limits: 100 params, 1000 metrics, 100 tags, 1000 items a request.</summary>
    public const int MaxParamsPerBatch = 100, MaxMetricsPerBatch = 1000, MaxItemsPerBatch = 1000;

    /// <summary>The longest param value MLflow stores (6000 characters since MLflow 2.0).</summary>
    public const int MaxParamValueLength = 6000;

    static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    readonly HttpClient _http;
    readonly Uri _root;

    /// <param name="trackingUri">The server (<c>http://host:5000</c>, a path prefix allowed).</param>
    /// <param name="timeout">Per request.</param>
    /// <param name="token">A bearer token (<c>MLFLOW_TRACKING_TOKEN</c>), or null.</param>
    /// <param name="user">Basic authentication (<c>MLFLOW_TRACKING_USERNAME</c>, <c>MLFLOW_TRACKING_PASSWORD</c>), or null.</param>
    public MlflowClient(Uri trackingUri, TimeSpan timeout, string? token = null, (string User, string Password)? user = null)
    {
        _root = new Uri(trackingUri.ToString().TrimEnd('/') + "/");
        _http = new HttpClient { Timeout = timeout };
        if (token is not null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        else if (user is { } basic)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{basic.User}:{basic.Password}")));
    }

    /// <summary>The experiment's id: <c>experiments/get-by-name</c>, else <c>experiments/create</c> (and get-by-name again if
    /// another client created it in between).</summary>
    public string GetOrCreateExperiment(string name)
    {
        if (FindExperiment(name) is { } id) return id;
        try
        {
            var created = Send(HttpMethod.Post, "api/2.0/mlflow/experiments/create", new JsonObject { ["name"] = name });
            return created.GetProperty("experiment_id").GetString()!;
        }
        catch (MlflowException e) when (e.ErrorCode == "RESOURCE_ALREADY_EXISTS" && FindExperiment(name) is { } raced)
        {
            return raced;
        }
    }

    /// <summary>The id of the experiment named <paramref name="name"/>, or null.</summary>
    public string? FindExperiment(string name)
    {
        try
        {
            var found = Send(HttpMethod.Get, "api/2.0/mlflow/experiments/get-by-name?experiment_name=" + Uri.EscapeDataString(name), null);
            return found.GetProperty("experiment").GetProperty("experiment_id").GetString();
        }
        catch (MlflowException e) when (e.ErrorCode == "RESOURCE_DOES_NOT_EXIST")
        {
            return null;
        }
    }

    /// <summary><c>runs/create</c>: returns the run's id and artifact URI.</summary>
    public (string RunId, string ArtifactUri) CreateRun(string experimentId, string runName, long startTime, IReadOnlyDictionary<string, string> tags)
    {
        var body = new JsonObject
        {
            ["experiment_id"] = experimentId, ["run_name"] = runName, ["start_time"] = startTime,
            ["tags"] = new JsonArray(tags.Select(t => (JsonNode)new JsonObject { ["key"] = t.Key, ["value"] = t.Value }).ToArray()),
        };
        var info = Send(HttpMethod.Post, "api/2.0/mlflow/runs/create", body).GetProperty("run").GetProperty("info");
        return (info.GetProperty("run_id").GetString()!, info.GetProperty("artifact_uri").GetString()!);
    }

    /// <summary>Logs the params in batches of at most 100 (values cut to <see cref="MaxParamValueLength"/>).</summary>
    public void LogParams(string runId, IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        for (int start = 0; start < parameters.Count; start += MaxParamsPerBatch)
            LogBatch(runId, Array.Empty<MlflowMetric>(), parameters.Skip(start).Take(MaxParamsPerBatch)
                .Select(p => new KeyValuePair<string, string>(p.Key, p.Value.Length > MaxParamValueLength ? p.Value[..MaxParamValueLength] : p.Value))
                .ToList());
    }

    /// <summary>Logs the metrics in batches of at most 1000.</summary>
    public void LogMetrics(string runId, IReadOnlyList<MlflowMetric> metrics)
    {
        for (int start = 0; start < metrics.Count; start += MaxMetricsPerBatch)
            LogBatch(runId, metrics.Skip(start).Take(MaxMetricsPerBatch).ToList(), Array.Empty<KeyValuePair<string, string>>());
    }

    /// <summary>One <c>runs/log-batch</c> request (the caller keeps it within MLflow's limits).</summary>
    public void LogBatch(string runId, IReadOnlyList<MlflowMetric> metrics, IReadOnlyList<KeyValuePair<string, string>> parameters)
    {
        var body = new JsonObject
        {
            ["run_id"] = runId,
            ["metrics"] = new JsonArray(metrics.Select(m => (JsonNode)new JsonObject
            {
                ["key"] = m.Key, ["value"] = JsonValue.Create(m.Value), ["timestamp"] = m.Timestamp, ["step"] = m.Step,
            }).ToArray()),
            ["params"] = new JsonArray(parameters.Select(p => (JsonNode)new JsonObject { ["key"] = p.Key, ["value"] = p.Value }).ToArray()),
        };
        Send(HttpMethod.Post, "api/2.0/mlflow/runs/log-batch", body);
    }

    /// <summary><c>runs/update</c>: the run's status (RUNNING, FINISHED, FAILED, KILLED) and end time (ms).</summary>
    public void UpdateRun(string runId, string status, long endTime) =>
        Send(HttpMethod.Post, "api/2.0/mlflow/runs/update", new JsonObject { ["run_id"] = runId, ["status"] = status, ["end_time"] = endTime });

    /// <summary>
    /// Uploads <paramref name="file"/> as the artifact <paramref name="artifactPath"/> (e.g. <c>weights/best.safetensors</c>)
    /// of the run whose artifact URI is <paramref name="artifactUri"/>: <c>mlflow-artifacts:/0/&lt;run&gt;/artifacts</c> is
    /// served by the tracking server at <c>PUT api/2.0/mlflow-artifacts/artifacts/0/&lt;run&gt;/artifacts/&lt;path&gt;</c>
    /// (as MLflow's own client resolves it), an <c>http(s)</c> URI takes the PUT itself.
    /// </summary>
    /// <exception cref="NotSupportedException">Another store (s3://, a path on the server): only MLflow's client reaches it.</exception>
    public void UploadArtifact(string artifactUri, string artifactPath, string file)
    {
        string escaped = string.Join('/', artifactPath.Split('/').Select(Uri.EscapeDataString));
        Uri target;
        if (artifactUri.StartsWith("mlflow-artifacts:", StringComparison.Ordinal))
        {
            string path = new Uri(artifactUri).AbsolutePath.Trim('/');   // mlflow-artifacts:/0/r/artifacts or mlflow-artifacts://host/0/r/artifacts
            target = new Uri(_root, $"api/2.0/mlflow-artifacts/artifacts/{path}/{escaped}");
        }
        else if (artifactUri.StartsWith("http://", StringComparison.Ordinal) || artifactUri.StartsWith("https://", StringComparison.Ordinal))
            target = new Uri(artifactUri.TrimEnd('/') + "/" + escaped);
        else
            throw new NotSupportedException($"the run's artifact store '{artifactUri}' is not served by the tracking server (mlflow server --serve-artifacts)");
        using var content = new StreamContent(File.OpenRead(file));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var request = new HttpRequestMessage(HttpMethod.Put, target) { Content = content };
        Answer(request);
    }

    JsonElement Send(HttpMethod method, string path, JsonObject? body)
    {
        using var request = new HttpRequestMessage(method, new Uri(_root, path));
        if (body is not null) request.Content = new StringContent(body.ToJsonString(Json), Encoding.UTF8, "application/json");
        return Answer(request);
    }

    // Sends the request; a refusal becomes an MlflowException with MLflow's error_code and message.
    JsonElement Answer(HttpRequestMessage request)
    {
        HttpResponseMessage response;
        try
        {
            response = _http.Send(request);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            throw new MlflowException($"{request.Method} {request.RequestUri}: {e.Message}", 0, null);
        }
        using (response)
        {
            string text;
            using (var reader = new StreamReader(response.Content.ReadAsStream())) text = reader.ReadToEnd();
            JsonElement answer = default;
            try
            {
                if (text.Length > 0) answer = JsonDocument.Parse(text).RootElement.Clone();
            }
            catch (JsonException) when (!response.IsSuccessStatusCode)
            {
            }
            if (response.IsSuccessStatusCode) return answer;
            string? code = answer.ValueKind == JsonValueKind.Object && answer.TryGetProperty("error_code", out var c) ? c.GetString() : null;
            string message = answer.ValueKind == JsonValueKind.Object && answer.TryGetProperty("message", out var m) ? m.GetString() ?? text : text;
            throw new MlflowException($"{request.Method} {request.RequestUri?.AbsolutePath}: {(int)response.StatusCode} {code} {message}".Trim(),
                (int)response.StatusCode, code);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _http.Dispose();
}
