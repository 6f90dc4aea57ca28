using System.Globalization;
using System.Net.Http.Json;
using Osprey.Config;
using Osprey.Data;
using Osprey.Models;
using Osprey.Tests.Models;
using Osprey.Training;
using Osprey.Training.Tracking;

namespace Osprey.Tests.Training;

/// <summary>
/// MLflow tracking (Ultralytics' callback semantics over MLflow's REST API) against an in-process server that refuses what
/// MLflow refuses: a short real training logs its params (every argument, ≤ 100 a request), per-epoch metrics (keys without
/// parentheses, step = the 0-based epoch), artifacts and the final status; a server that is down is one warning and the same
/// training.
/// </summary>
public class MlflowTrackingTests
{
    static readonly string[] EpochKeys =
    {
        "lr/pg0", "lr/pg1", "lr/pg2", "train/box_loss", "train/cls_loss", "train/dfl_loss", "metrics/precisionB", "metrics/recallB",
        "metrics/mAP50B", "metrics/mAP50-95B", "val/box_loss", "val/cls_loss", "val/dfl_loss",
    };

    static (string Dir, string[] Args) Setup(int epochs)
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 16, ValImages: 8, Seed: 3), dir);
        return (dir, new[] { $"data={data}", $"model={DistillationTests.TinyYaml(dir, "t", 80)}", $"epochs={epochs}", "imgsz=64",
            "batch=8", "workers=1", "device=cpu", $"project={dir}", "warmup_epochs=0.5", "close_mosaic=1" });
    }

    static Func<string, string?> Environment(Dictionary<string, string> variables) => name => variables.GetValueOrDefault(name);

    [Fact]
    public async Task ClientStaysWithinWhatTheServerAccepts()
    {
        using var server = new MlflowTestServer();
        using var client = new MlflowClient(new Uri(server.Uri), TimeSpan.FromSeconds(10));
        Assert.Null(client.FindExperiment("e"));
        string id = client.GetOrCreateExperiment("e");
        Assert.Equal(id, client.GetOrCreateExperiment("e"));
        using (var http = new HttpClient())
        {
            var again = await http.PostAsJsonAsync($"{server.Uri}/api/2.0/mlflow/experiments/create", new { name = "e" });
            Assert.Equal(400, (int)again.StatusCode);
            Assert.Contains("RESOURCE_ALREADY_EXISTS", await again.Content.ReadAsStringAsync());
        }
        var (run, artifacts) = client.CreateRun(id, "r", 1, new Dictionary<string, string>());
        Assert.Equal($"mlflow-artifacts:/{id}/{run}/artifacts", artifacts);

        var many = Enumerable.Range(0, 250).Select(i => new KeyValuePair<string, string>($"p{i}", $"{i}")).ToList();
        var refused = Assert.Throws<MlflowException>(() => client.LogBatch(run, Array.Empty<MlflowMetric>(), many.Take(101).ToList()));
        Assert.Equal((400, "INVALID_PARAMETER_VALUE"), (refused.Status, refused.ErrorCode));
        client.LogParams(run, many);                                                  // 100 + 100 + 50
        Assert.Equal(new[] { 100, 100, 50 }, server.Batches.Select(b => b.Params));
        var changed = Assert.Throws<MlflowException>(() => client.LogParams(run, new[] { new KeyValuePair<string, string>("p3", "other") }));
        Assert.Equal("INVALID_PARAMETER_VALUE", changed.ErrorCode);
        client.LogParams(run, new[] { new KeyValuePair<string, string>("long", new string('x', 7000)) });
        Assert.Equal(6000, server.Runs[run].Params["long"].Length);                   // cut to MLflow's limit

        var metrics = Enumerable.Range(0, 1001).Select(i => new MlflowMetric("m", i, 5, i)).ToList();
        Assert.Equal(400, Assert.Throws<MlflowException>(() => client.LogBatch(run, metrics, Array.Empty<KeyValuePair<string, string>>())).Status);
        client.LogMetrics(run, metrics);
        Assert.Equal(new[] { 1000, 1 }, server.Batches.Skip(4).Select(b => b.Metrics));

        var unknown = Assert.Throws<MlflowException>(() => client.UpdateRun("nope", "FINISHED", 2));
        Assert.Equal((404, "RESOURCE_DOES_NOT_EXIST"), (unknown.Status, unknown.ErrorCode));
        Assert.Throws<NotSupportedException>(() => client.UploadArtifact("s3://bucket/0/r/artifacts", "a.txt", "/dev/null"));

        // Python's str() of the arguments' values, as mlflow.log_params(dict(trainer.args)) writes them.
        Assert.Equal(new[] { "None", "True", "0.01", "1.0", "1e-05", "16", "0.0" },
            new object?[] { null, true, 0.01, 1.0, 1e-5, 16, 0.0 }.Select(MlflowTracking.PythonStr));
        Assert.Equal("metrics/mAP50-95B", MlflowTracking.Sanitize("metrics/mAP50-95(B)"));
    }

    [Fact]
    public void TrainingLogsParamsMetricsArtifactsAndFinishes()
    {
        using var server = new MlflowTestServer();
        var (dir, args) = Setup(epochs: 2);
        var tracking = new MlflowTracking(Environment(new() { ["MLFLOW_TRACKING_URI"] = server.Uri, ["MLFLOW_RUN"] = "osprey-run" }));
        var messages = new List<string>();
        var done = new Trainer(ArgsParser.Parse(args.Append("name=tracked").ToArray()), e => { if (e is TrainingMessage m) messages.Add(m.Text); })
            .Add(tracking).Train();

        Assert.Equal(new[] { dir }, server.Experiments.Keys);                        // no MLFLOW_EXPERIMENT_NAME: the project
        var run = server.Runs.Values.Single();
        Assert.Equal((tracking.RunId, "osprey-run", "FINISHED"), (run.Id, run.Name, run.Status));
        Assert.NotNull(run.EndTime);
        Assert.StartsWith("404 RESOURCE_DOES_NOT_EXIST: Could not find experiment", Assert.Single(server.Refusals)); // then created
        Assert.DoesNotContain(messages, m => m.Contains("WARNING", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith($"MLflow: logging run_id({run.Id}) to {server.Uri}", StringComparison.Ordinal));

        // Every argument, then save_dir; ≤ 100 a request.
        Assert.Equal(ArgsSchema.All.Select(a => a.Key).Append("save_dir").Order(), run.Params.Keys.Order());
        Assert.True(ArgsSchema.All.Count + 1 > 100, "the params need more than one request");
        var paramBatches = server.Batches.Where(b => b.Params > 0).Select(b => b.Params).ToList();
        Assert.Equal((ArgsSchema.All.Count + 1 + 99) / 100, paramBatches.Count);
        Assert.All(paramBatches, n => Assert.InRange(n, 1, 100));
        Assert.Equal(("2", "64", "0.01", "tracked", "None", "False", "1.0", done.RunDirectory), (run.Params["epochs"], run.Params["imgsz"],
            run.Params["lr0"], run.Params["name"], run.Params["time"], run.Params["exist_ok"], run.Params["fraction"], run.Params["save_dir"]));

        // Each epoch at step 0, 1: results.csv's values under sanitised keys.
        var rows = ResultsCsv.Read(Path.Combine(done.RunDirectory, "results.csv"));
        for (int step = 0; step < 2; step++)
        {
            var logged = run.Metrics.Where(m => m.Step == step).ToList();
            Assert.Equal(EpochKeys.Order(), logged.Select(m => m.Key).Order());
            foreach (var (key, value, _) in logged)
            {
                string column = key.StartsWith("metrics/", StringComparison.Ordinal) ? key[..^1] + "(B)" : key;
                double expected = rows[step][column];
                Assert.True(Math.Abs(value - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"{key} step {step}: {value} vs {expected}");
            }
        }
        Assert.Equal(2 * EpochKeys.Length, run.Metrics.Count);

        // Artifacts: the weights folder, results.csv, args.yaml, the plots.
        string root = $"{run.ExperimentId}/{run.Id}/artifacts/";
        foreach (string file in new[] { "weights/best.safetensors", "weights/last.safetensors", "weights/last.ckpt", "results.csv", "args.yaml", "results.png" })
            Assert.True(server.Artifacts.ContainsKey(root + file), $"{file} not uploaded ({string.Join(", ", server.Artifacts.Keys)})");
        Assert.Equal(File.ReadAllBytes(Path.Combine(done.RunDirectory, "results.csv")), server.Artifacts[root + "results.csv"]);
        Assert.Equal(File.ReadAllBytes(done.BestWeights!), server.Artifacts[root + "weights/best.safetensors"]);

        // The weights carry what they were trained on: the export's description names it.
        Assert.Equal(args[0]["data=".Length..], TrainedOn.ReadMetadata(done.BestWeights!)["data"]);

        // The same training with the server down: one warning, the same results.
        var down = new MlflowTracking(Environment(new() { ["MLFLOW_TRACKING_URI"] = $"http://127.0.0.1:{MlflowTestServer.FreePort()}" }));
        var downMessages = new List<string>();
        var untracked = new Trainer(ArgsParser.Parse(args.Append("name=untracked").ToArray()), e => { if (e is TrainingMessage m) downMessages.Add(m.Text); })
            .Add(down).Train();
        var warning = Assert.Single(downMessages, m => m.Contains("MLflow", StringComparison.Ordinal));
        Assert.StartsWith("MLflow: WARNING ⚠️ failed to initialize:", warning);
        Assert.Null(down.RunId);
        var untrackedRows = ResultsCsv.Read(Path.Combine(untracked.RunDirectory, "results.csv"));
        Assert.Equal(rows.Count, untrackedRows.Count);
        for (int i = 0; i < rows.Count; i++)
            foreach (string column in rows[i].Keys.Where(c => c != "time"))
                Assert.Equal(rows[i][column], untrackedRows[i][column]);
        Assert.Equal(File.ReadAllBytes(done.LastWeights), File.ReadAllBytes(untracked.LastWeights));
    }

    [Fact]
    public void ATrainingThatThrowsEndsItsRunFailed()
    {
        using var server = new MlflowTestServer();
        var (_, args) = Setup(epochs: 2);
        var tracking = new MlflowTracking(Environment(new()
            { ["MLFLOW_TRACKING_URI"] = server.Uri, ["MLFLOW_EXPERIMENT_NAME"] = "osprey-tests" }));
        var trainer = new Trainer(ArgsParser.Parse(args.Append("name=broken").Append("val=False").ToArray())).Add(tracking).Add(new Thrower());
        var e = Assert.Throws<InvalidOperationException>(() => trainer.Train());
        Assert.Equal("disk full", e.Message);
        var run = server.Runs.Values.Single();
        Assert.Equal(("osprey-tests", "broken", "FAILED"), (server.Experiments.Keys.Single(), run.Name, run.Status));
        // The epoch before the failure was logged; without validation only the lr and train losses.
        Assert.Equal(EpochKeys.Take(6).Order(), run.Metrics.Select(m => m.Key).Order());
        Assert.Empty(server.Artifacts);
    }

    // Fails the training at the end of its first epoch.
    sealed class Thrower : ITrainingCallback
    {
        public void On(TrainingEvent e, TrainingRun run)
        {
            if (e is EpochFinished) throw new InvalidOperationException("disk full");
        }
    }
}
