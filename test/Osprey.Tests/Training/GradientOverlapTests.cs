using System.Globalization;
using System.Text.Json;
using Osprey.Config;
using Osprey.Data;
using Osprey.Distributed;
using Osprey.Models;
using Osprey.Tests.Distributed;
using Osprey.Tests.Models;
using Osprey.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Training;

/// <summary>
/// Overlapped gradient sync (all-reduce started during backward) and post-backward sync with gradients as bucket views
/// against post-backward sync with copied gradients on 2 MPI ranks: the same parameters to the bit, and the overlapped
/// all-reduces really start before backward ends.
/// </summary>
[Collection("multi-process")]
public class GradientOverlapTests(ITestOutputHelper log)
{
    // bucket bytes, accumulate, sync_bn. 2000 B buckets split layers (a Conv block's BN weight and bias land in
    // different buckets, a large convolution weight fills a bucket alone); 25 MiB is one bucket for the tiny model.
    [Theory]
    [InlineData(25L * 1024 * 1024, 1, false)]
    [InlineData(2000L, 2, false)]
    [InlineData(2000L, 1, true)]
    public void OverlappedSyncGivesThePostBackwardParametersBitForBit(long bucketBytes, int accumulate, bool syncBn)
    {
        string yaml = Path.Combine(TestModels.TempDir(), "tiny.yaml");
        File.WriteAllText(yaml, TestModels.TinyYaml(3));
        string folder = WorkerRunner.TempFolder("overlap");
        // 4 optimiser steps; on even steps the last detection level is left out of the loss, so its head parameters get
        // no gradient (null on the first step, the accumulated one otherwise) and its buckets start only after backward.
        LaunchResult run = RunOneThreadPerRank(folder, yaml, bucketBytes.ToString(CultureInfo.InvariantCulture),
            accumulate.ToString(CultureInfo.InvariantCulture), "4", syncBn ? "1" : "0");
        log.WriteLine(run.Text);
        Assert.Equal(0, run.ExitCode);
        JsonElement[] ranks = { WorkerRunner.ReadRank(folder, 0), WorkerRunner.ReadRank(folder, 1) };

        foreach (JsonElement rank in ranks)
        {
            Assert.Equal("Overlapped", rank.GetProperty("overlapped_sync").GetString());
            Assert.True(rank.GetProperty("overlapped_markers").GetInt32() > 50, "readiness markers on the Conv2d/BatchNorm2d modules");
            Assert.True(rank.GetProperty("post_bucket_view").GetBoolean(), "post-backward keeps the gradients in the buckets by default");
            Assert.False(rank.GetProperty("post_copy_bucket_view").GetBoolean());
            Assert.False(rank.GetProperty("overlapped_bucket_view").GetBoolean()); // overlap copies into its own buffers
            float[] copied = WorkerRunner.Floats(rank, "post_copy_state");
            foreach (string key in new[] { "post", "overlapped" })
            {
                float[] state = WorkerRunner.Floats(rank, $"{key}_state");
                Assert.Equal(copied.Length, state.Length);
                int different = Enumerable.Range(0, copied.Length).Count(i => BitConverter.SingleToInt32Bits(copied[i]) != BitConverter.SingleToInt32Bits(state[i]));
                Assert.True(different == 0, $"{different} of {copied.Length} values differ between post-backward with copied gradients and {key}");
            }
        }
        // The synchronised gradient is the mean of the ranks' own ones (not their sum, not one rank's), for every sync.
        foreach (string key in new[] { "post", "post_copy", "overlapped" })
        {
            float[] local0 = WorkerRunner.Floats(ranks[0], $"{key}_local_grads"), local1 = WorkerRunner.Floats(ranks[1], $"{key}_local_grads");
            float[] synced = WorkerRunner.Floats(ranks[0], $"{key}_synced_grads");
            Assert.Equal(synced, WorkerRunner.Floats(ranks[1], $"{key}_synced_grads"));
            Assert.True(local0.Zip(local1).Count(p => p.First != p.Second) > local0.Length / 2, "ranks should have different local gradients");
            for (int i = 0; i < synced.Length; i++)
            {
                float mean = (local0[i] + local1[i]) / 2;
                Assert.True(Math.Abs(synced[i] - mean) <= 1e-6f * Math.Max(1f, Math.Abs(mean)),
                    $"{key}: gradient {i} is {synced[i]}, the ranks' mean is {mean} (local {local0[i]}, {local1[i]})");
            }
        }
        // Each rank trained on its own images: equal states mean the gradients really were averaged.
        Assert.Equal(WorkerRunner.Floats(ranks[0], "overlapped_state"), WorkerRunner.Floats(ranks[1], "overlapped_state"));
        float[] start = InitialState(yaml);
        Assert.True(start.Zip(WorkerRunner.Floats(ranks[0], "post_state")).Count(p => p.First != p.Second) > start.Length / 2,
            "training should change most values");

        // The last micro-step (all levels used): every bucket starts once, in order; with several buckets the first
        // starts while backward is still running (before the last module's gradients are ready).
        string[] events = ranks[0].GetProperty("events").EnumerateArray().Select(e => e.GetString()!).ToArray();
        int buckets = ranks[0].GetProperty("overlapped_buckets").GetInt32();
        int[] started = events.Where(e => e.StartsWith("BucketStarted:", StringComparison.Ordinal))
            .Select(e => int.Parse(e.Split(':')[1], CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(Enumerable.Range(0, buckets), started);
        int firstStart = Array.FindIndex(events, e => e.StartsWith("BucketStarted:", StringComparison.Ordinal));
        int lastReady = Array.FindLastIndex(events, e => e.StartsWith("GradientsReady:", StringComparison.Ordinal));
        int backwardEnd = Array.IndexOf(events, "BackwardFinished:-1");
        int startedDuringBackward = events.Take(backwardEnd).Count(e => e.StartsWith("BucketStarted:", StringComparison.Ordinal));
        log.WriteLine($"{buckets} buckets, {startedDuringBackward} started during backward; first start at event {firstStart}, last readiness at {lastReady}");
        if (buckets > 1)
        {
            Assert.True(firstStart < lastReady, $"the first all-reduce started at event {firstStart}, after the last readiness signal ({lastReady})");
            Assert.True(startedDuringBackward >= buckets / 2, $"only {startedDuringBackward} of {buckets} buckets started during backward");
        }
        else
        {
            Assert.Equal(1, buckets);
        }
    }

    [Fact]
    public async Task TrainerWithOverlappedSyncBucketViewsOrFlatBucketsEndsWithTheCopiedGradientsWeights()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 16, ValImages: 4, Seed: 5), dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        // batch 4 (2 per rank), nbs 8, no warmup (which ramps accumulation up from 1): accumulate 2, so 4 micro-steps
        // and 2 optimiser steps; 0.01 MB buckets.
        string[] common = { $"data={data}", $"model={model}", "epochs=1", "imgsz=64", "batch=4", "nbs=8", "workers=1",
            "device=cpu", $"project={dir}", "nproc=2", "plots=False", "val=False", "warmup_epochs=0" };
        var weights = new Dictionary<string, Dictionary<string, float[]>>();
        // Per-parameter optimiser: post: gradients as bucket views; post_copy: copied into and out of the buckets; overlap.
        // Flat optimiser (the default): flat: the buckets are slices of its gradient buffers; flat_copy: copied.
        foreach (string sync in new[] { "post", "post_copy", "overlap", "flat", "flat_copy" })
        {
            var environment = new Dictionary<string, string>
            {
                ["OMP_NUM_THREADS"] = "1", [Trainer.GradientSyncVariable] = sync == "overlap" ? "overlap" : "post",
                [Trainer.BucketVariable] = "0.01", [Trainer.GradientViewVariable] = sync.EndsWith("_copy", StringComparison.Ordinal) ? "0" : "1",
                [Trainer.FlatVariable] = sync.StartsWith("flat", StringComparison.Ordinal) ? "1" : "0",
            };
            var output = new List<string>();
            var result = await DistributedLaunch.RunAsync(ArgsParser.Parse(common.Append($"name={sync}").ToArray()), LocalLauncher.DotnetHost,
                new[] { Path.Combine(AppContext.BaseDirectory, "Osprey.Cli.dll"), "train" },
                line => { lock (output) output.Add(line.Text); }, environment);
            lock (output) log.WriteLine(string.Join('\n', output.TakeLast(10)));
            Assert.Equal(0, result.ExitCode);
            weights[sync] = ModelFactory.Create(Path.Combine(result.RunDirectory, "weights", "last.safetensors")).state_dict()
                .ToDictionary(kv => kv.Key, kv => Osprey.Runtime.HostCopy.Floats(kv.Value));
        }
        foreach (string key in weights["post_copy"].Keys)
        {
            foreach (string other in new[] { "post", "overlap" })
                Assert.True(weights["post_copy"][key].AsSpan().SequenceEqual(weights[other][key]), $"{key} differs between post-backward with copied gradients and {other}");
            Assert.True(weights["flat_copy"][key].AsSpan().SequenceEqual(weights["flat"][key]), $"{key} differs between flat buckets and copied gradients");
        }
    }

    static LaunchResult RunOneThreadPerRank(string folder, params string[] extra)
    {
        string? threads = Environment.GetEnvironmentVariable("OMP_NUM_THREADS");
        Environment.SetEnvironmentVariable("OMP_NUM_THREADS", "1");
        try
        {
            return WorkerRunner.Run(2, "overlap", folder, timeout: TimeSpan.FromSeconds(120), extra: extra);
        }
        finally
        {
            Environment.SetEnvironmentVariable("OMP_NUM_THREADS", threads);
        }
    }

    static float[] InitialState(string yaml)
    {
        TorchSharp.torch.manual_seed(11); // as the worker
        var model = ModelFactory.Create(yaml, nc: 3);
        return model.state_dict().Values.Where(t => t.is_floating_point())
            .SelectMany(t => Osprey.Runtime.HostCopy.Floats(t)).ToArray();
    }
}
