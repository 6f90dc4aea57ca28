using System.Globalization;
using Osprey.Config;

namespace Osprey.Training.Tracking;

/// <summary>
/// Ultralytics' MLflow callback (ultralytics/utils/callbacks/mlflow.py) over MLflow's REST API (<see cref="MlflowClient"/>),
/// on the main rank. On when <c>MLFLOW_TRACKING_URI</c> names an http(s) server. At the start: the experiment
/// <c>MLFLOW_EXPERIMENT_NAME</c>, else the run's <c>project</c>, else <c>/Shared/Ultralytics</c> (created when missing); a
/// run named <c>MLFLOW_RUN</c>, else the run folder's name; every train argument as a param (Python's <c>str()</c> of the
/// value, as <c>mlflow.log_params(dict(trainer.args))</c>; plus <c>save_dir</c>), in batches of at most 100. Each epoch, at
/// step = the 0-based epoch (Ultralytics' <c>trainer.epoch</c>): <c>lr/pg0</c> … and the train losses, and for a validated
/// epoch the metrics and validation losses, keys without parentheses (<c>sanitize_dict</c>: <c>metrics/mAP50-95B</c>). At
/// the end: the weights folder under <c>weights/</c> and the run folder's .png, .jpg, .csv, .pt and .yaml files (results.csv,
/// args.yaml, the plots), then the run FINISHED (left RUNNING with <c>MLFLOW_KEEP_RUN_ACTIVE=true</c>); FAILED when training
/// throws, KILLED when it is cancelled. A tracking failure is one warning (a <see cref="TrainingMessage"/>) and ends the
/// tracking, never the training.
/// </summary>
public sealed class MlflowTracking : ITrainingCallback
{
    /// <summary>The tracking server (<c>http://127.0.0.1:5000</c>); unset: no tracking.</summary>
    public const string TrackingUriVariable = "MLFLOW_TRACKING_URI";

    /// <summary>The experiment's name (default: the run's project, else <see cref="DefaultExperiment"/>).</summary>
    public const string ExperimentVariable = "MLFLOW_EXPERIMENT_NAME";

    /// <summary>The run's name (default: the run folder's name, e.g. train2).</summary>
    public const string RunVariable = "MLFLOW_RUN";

    /// <summary><c>true</c>: the run stays RUNNING after training.</summary>
    public const string KeepRunActiveVariable = "MLFLOW_KEEP_RUN_ACTIVE";

    /// <summary>Ultralytics' experiment when neither the variable nor <c>project</c> names one.</summary>
    public const string DefaultExperiment = "/Shared/Ultralytics";

    const string Prefix = "MLflow: ";
    static readonly string[] LoggedSuffixes = { ".png", ".jpg", ".csv", ".pt", ".yaml" };

    readonly Func<string, string?> _environment;
    MlflowClient? _client;
    string? _runId, _artifactUri, _uri;

    /// <param name="environment">Reads a variable (default: the process's environment).</param>
    public MlflowTracking(Func<string, string?>? environment = null) => _environment = environment ?? Environment.GetEnvironmentVariable;

    /// <summary>The MLflow run's id once it is created (null when not tracking).</summary>
    public string? RunId => _runId;

    /// <inheritdoc/>
    public void On(TrainingEvent e, TrainingRun run)
    {
        switch (e)
        {
            case TrainingStarted:
                Guard(run, "initialize", () => Start(run));
                break;
            case EpochFinished finished when _client is not null:
                Guard(run, "log metrics", () => _client.LogMetrics(_runId!, EpochMetrics(finished, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())));
                break;
            case TrainingFinished when _client is not null:
                Guard(run, "log artifacts", () => End(run));
                break;
            case TrainingFailed failed when _client is not null:
                Guard(run, "end the run", () => Close(failed.Cancelled ? "KILLED" : "FAILED"));
                break;
        }
    }

    // Runs one tracking step; a failure is one warning and the end of tracking (Ultralytics: "Not tracking this run").
    void Guard(TrainingRun run, string what, Action step)
    {
        try
        {
            step();
        }
        catch (Exception e)                                              // whatever it was: tracking never stops training
        {
            _client?.Dispose();
            _client = null;
            run.Message($"{Prefix}WARNING ⚠️ failed to {what}: {e.Message}. Not tracking this run any further (training goes on).");
        }
    }

    void Start(TrainingRun run)
    {
        string? uri = _environment(TrackingUriVariable);
        if (string.IsNullOrWhiteSpace(uri)) return;
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var server) || server.Scheme is not ("http" or "https"))
            throw new NotSupportedException($"{TrackingUriVariable}={uri}: Osprey logs to an MLflow tracking server (http:// or https://)");
        double seconds = double.TryParse(_environment("MLFLOW_HTTP_REQUEST_TIMEOUT"), NumberStyles.Float, CultureInfo.InvariantCulture, out var t) ? t : 120;
        string? user = _environment("MLFLOW_TRACKING_USERNAME"), password = _environment("MLFLOW_TRACKING_PASSWORD");
        _client = new MlflowClient(server, TimeSpan.FromSeconds(seconds), _environment("MLFLOW_TRACKING_TOKEN"),
            user is null ? null : (user, password ?? ""));
        _uri = uri;
        string experiment = NonEmpty(_environment(ExperimentVariable)) ?? NonEmpty(run.Args.Project) ?? DefaultExperiment;
        string runName = NonEmpty(_environment(RunVariable)) ?? Path.GetFileName(run.Files.Directory);
        string experimentId = _client.GetOrCreateExperiment(experiment);
        var tags = new Dictionary<string, string> { ["mlflow.runName"] = runName, ["mlflow.source.name"] = "osprey train" };
        (_runId, _artifactUri) = _client.CreateRun(experimentId, runName, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), tags);
        run.Message($"{Prefix}logging run_id({_runId}) to {uri}");
        _client.LogParams(_runId, Params(run.Args, run.Files.Directory));
    }

    void End(TrainingRun run)
    {
        var files = new List<(string Path, string ArtifactPath)>();
        if (Directory.Exists(run.Files.Weights))
            files.AddRange(Directory.EnumerateFiles(run.Files.Weights).Order(StringComparer.Ordinal).Select(f => (f, "weights/" + Path.GetFileName(f))));
        files.AddRange(Directory.EnumerateFiles(run.Files.Directory).Order(StringComparer.Ordinal)
            .Where(f => LoggedSuffixes.Contains(Path.GetExtension(f), StringComparer.Ordinal)).Select(f => (f, Path.GetFileName(f))));
        foreach (var (file, artifactPath) in files) _client!.UploadArtifact(_artifactUri!, artifactPath, file);
        if (!string.Equals(_environment(KeepRunActiveVariable), "true", StringComparison.OrdinalIgnoreCase)) Close("FINISHED");
        run.Message($"{Prefix}results logged to {_uri}");
    }

    void Close(string status)
    {
        _client!.UpdateRun(_runId!, status, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        _client.Dispose();
        _client = null;
    }

    /// <summary>
    /// The params of a run: every argument (args.yaml's keys) as Python's <c>str()</c> writes it (None, True, 0.01, 1.0),
    /// <c>name</c> the run folder's name and <c>save_dir</c> the folder, as Ultralytics' trainer sets them before logging.
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Params(OspreyArgs args, string runDirectory)
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (ArgSpec spec in ArgsSchema.All)
        {
            object? value = spec.Key == "name" ? Path.GetFileName(runDirectory) : spec.Property.GetValue(args);
            result.Add(new(spec.Key, PythonStr(value)));
        }
        result.Add(new("save_dir", runDirectory));
        return result;
    }

    /// <summary>
    /// An epoch's metrics, step = its 0-based index: <c>lr/pg0</c> …, <c>train/box_loss</c> …, and when it was validated
    /// <c>metrics/precisionB</c> … and <c>val/box_loss</c> … (parentheses removed, as Ultralytics' <c>sanitize_dict</c>).
    /// </summary>
    public static IReadOnlyList<MlflowMetric> EpochMetrics(EpochFinished finished, long timestamp)
    {
        var row = finished.Result;
        string[] columns = ResultsCsv.ColumnsFor(row.LossNames).ToArray();
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int i = 0; i < row.LearningRates.Count; i++) values[$"lr/pg{i}"] = row.LearningRates[i];
        for (int i = 0; i < row.LossNames.Count; i++) values[$"train/{row.LossNames[i]}"] = row.TrainLosses[i];
        if (finished.Validation is not null)
        {
            values["metrics/precision(B)"] = row.Precision;
            values["metrics/recall(B)"] = row.Recall;
            values["metrics/mAP50(B)"] = row.Map50;
            values["metrics/mAP50-95(B)"] = row.Map50To95;
            for (int i = 0; i < row.LossNames.Count; i++) values[$"val/{row.LossNames[i]}"] = row.ValLosses[i];
        }
        return values.OrderBy(kv => Array.IndexOf(columns, kv.Key))
            .Select(kv => new MlflowMetric(Sanitize(kv.Key), kv.Value, timestamp, row.Epoch - 1)).ToList();
    }

    /// <summary>Ultralytics' <c>sanitize_dict</c> key: without "(" and ")".</summary>
    public static string Sanitize(string key) => key.Replace("(", "", StringComparison.Ordinal).Replace(")", "", StringComparison.Ordinal);

    /// <summary>Python's <c>str()</c> of an argument's value: None, True/False, floats with a decimal point or exponent.</summary>
    public static string PythonStr(object? value) => value switch
    {
        null => "None",
        double d => PythonFloat(d),
        float f => PythonFloat(f),
        _ => ArgsSchema.Format(value),
    };

    static string PythonFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16) return d.ToString("F1", CultureInfo.InvariantCulture);
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        return r.Contains('E') ? r.Replace("E", "e", StringComparison.Ordinal) : r;
    }

    static string? NonEmpty(string? text) => string.IsNullOrWhiteSpace(text) ? null : text;
}
