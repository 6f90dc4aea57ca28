// Gradient sync scenarios: post-backward vs overlapped all-reduce (DataParallel) on the same job.
using System.Diagnostics;
using System.Globalization;
using Osprey.Distributed;
using Osprey.Models;
using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

static partial class OverlapScenarios
{
    // CPU time of the calling thread (torch with one thread computes on it): robust to other processes taking the core.
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec { public long Seconds, Nanoseconds; }

    static double ThreadCpuMs()
    {
        ClockGetTime(3, out TimeSpec t); // CLOCK_THREAD_CPUTIME_ID
        return t.Seconds * 1e3 + t.Nanoseconds / 1e6;
    }

    // Args: model yaml, bucket bytes, accumulate, steps, sync_bn (0/1). Trains two replicas from the same start, one per
    // gradient sync, on the same per-rank data (rank-dependent), and reports both final states and the overlapped
    // run's event timeline of its last synchronised micro-step.
    public static Dictionary<string, object> Compare(IProcessGroup group, string yaml, long bucketBytes, int accumulate,
        int steps, bool syncBn)
    {
        torch.set_num_threads(1);
        var results = new Dictionary<string, object>();
        if (group is MpiProcessGroup mpi) results["mpi_thread_level"] = mpi.ThreadLevel;
        torch.manual_seed(11);
        var reference = ModelFactory.Create(yaml, nc: 3);
        reference.train();
        // post: gradients as bucket views (the default); post_copy: copied into and out of the buckets; overlapped.
        foreach (var (key, sync, view) in new[] { ("post", GradientSync.PostBackward, true), ("post_copy", GradientSync.PostBackward, false),
                     ("overlapped", GradientSync.Overlapped, true) })
        {
            var model = new DetectionModel(reference.Config);
            model.load_state_dict(reference.state_dict());
            model.train();
            using var ddp = new DataParallel(model, group, bucketBytes, sync, gradientAsBucketView: view);
            using var syncBatchNorm = syncBn ? new SyncBatchNorm(model, group) : null;
            ddp.BroadcastState();
            results[$"{key}_sync"] = ddp.Sync.ToString();
            results[$"{key}_bucket_view"] = ddp.GradientAsBucketView;
            results[$"{key}_buckets"] = ddp.BucketBytes.Count;
            results[$"{key}_markers"] = ddp.ReadinessMarkers;
            using var lr = 0.05.ToScalar();
            for (int step = 0; step < steps; step++)
            {
                for (int micro = 0; micro < accumulate; micro++)
                {
                    using var scope = NewDisposeScope();
                    bool last = micro == accumulate - 1;
                    if (!syncBn) ddp.BroadcastBuffers();              // as the trainer (DDP's broadcast_buffers)
                    ddp.BeginMicroStep(synchronize: last);
                    var generator = new Generator((ulong)(1000 * group.Rank + 10 * step + micro + 1));
                    var images = rand(new long[] { 2, 3, 64, 64 }, generator: generator);
                    var maps = model.ForwardFeatures(images);
                    // Even steps leave the last level out: its head convolutions get no gradient in that step.
                    int levels = step % 2 == 0 ? maps.Length - 1 : maps.Length;
                    Tensor loss = maps[0].square().mean();
                    for (int i = 1; i < levels; i++)
                    {
                        using var weight = ((double)(i + 1) * (i + 1)).ToScalar();
                        loss = loss + maps[i].square().mean().mul(weight);
                    }
                    loss.backward();
                    if (!last) continue;
                    bool record = step == 1;                            // a step where every parameter has a gradient
                    if (record) results[$"{key}_local_grads"] = FlattenGradients(model);
                    ddp.AverageGradients();
                    if (record) results[$"{key}_synced_grads"] = FlattenGradients(model);
                    using (no_grad())
                        foreach (var p in model.parameters())
                        {
                            using var grad = p.grad;
                            if (grad is not null) p.sub_(grad * lr);
                            p.grad = null;
                        }
                }
            }
            if (!syncBn) ddp.BroadcastBuffers();                      // the last forward's local BN statistics
            results[$"{key}_state"] = Flatten(model);
            if (sync == GradientSync.Overlapped)
            {
                results["events"] = ddp.LastSyncEvents.Select(e => $"{e.Kind}:{e.Index}").ToArray();
                results["sync_note"] = ddp.SyncNote ?? "";
            }
        }
        return results;
    }

    // Every trainable parameter's gradient (zeros where there is none), in registration order.
    static float[] FlattenGradients(nn.Module model)
    {
        using var scope = NewDisposeScope();
        return cat(model.parameters().Where(p => p.requires_grad)
                .Select(p => (p.grad is { } g ? g : zeros_like(p)).to_type(ScalarType.Float32).reshape(-1)).ToArray())
            .data<float>().ToArray();
    }

    static float[] Flatten(nn.Module model)
    {
        using var scope = NewDisposeScope();
        return cat(model.state_dict().Values.Where(t => t.is_floating_point()).Select(t => t.to_type(ScalarType.Float32).reshape(-1)).ToArray())
            .data<float>().ToArray();
    }

    // Args: model, image size, batch per rank, steps per block, rounds, then configs "post:MB" (gradients as bucket views),
    // "copy:MB" (post-backward, gradients copied into and out of the buckets) / "overlap:MB".
    // Every round runs each config for a block of steps (forward, backward, gradient sync; no optimiser step, so
    // the work is the same throughout); prints and returns per-config median step and sync times.
    public static Dictionary<string, object> Bench(IProcessGroup group, string model, int imageSize, int batch, int steps,
        int rounds, string[] configs)
    {
        torch.set_num_threads(1);
        torch.manual_seed(3);
        var detector = ModelFactory.Create(model, nc: 80);
        detector.train();
        DataParallel.BroadcastModule(detector, group);
        var parallel = configs.Select(c =>
        {
            string[] parts = c.Split(':');
            var sync = parts[0] == "overlap" ? GradientSync.Overlapped : GradientSync.PostBackward;
            long bytes = (long)(double.Parse(parts[1], CultureInfo.InvariantCulture) * 1024 * 1024);
            return new DataParallel(detector, group, bytes, sync, gradientAsBucketView: parts[0] != "copy");
        }).ToArray();
        var stepTimes = configs.Select(_ => new List<double>()).ToArray();
        var syncTimes = configs.Select(_ => new List<double>()).ToArray();
        var backwardTimes = configs.Select(_ => new List<double>()).ToArray();
        var cpuTimes = configs.Select(_ => new List<double>()).ToArray();
        var copyTimes = configs.Select(_ => new List<double>()).ToArray();
        var images = rand(new long[] { batch, 3, imageSize, imageSize }, generator: new Generator((ulong)(group.Rank + 1)));
        for (int round = -1; round < rounds; round++)                  // round -1: warm-up, not recorded
            for (int c = 0; c < configs.Length; c++)
                for (int step = 0; step < (round < 0 ? 2 : steps); step++)
                {
                    using var scope = NewDisposeScope();
                    group.Barrier();
                    var watch = Stopwatch.StartNew();
                    double cpu = ThreadCpuMs();
                    parallel[c].BeginMicroStep(synchronize: true);
                    var maps = detector.ForwardFeatures(images);
                    var loss = maps.Select(m => m.square().mean()).Aggregate((a, b) => a + b);
                    loss.backward();
                    double before = watch.Elapsed.TotalMilliseconds;
                    cpu = ThreadCpuMs() - cpu;
                    parallel[c].AverageGradients();
                    double total = watch.Elapsed.TotalMilliseconds;
                    foreach (var p in detector.parameters()) p.grad = null;
                    if (round < 0) continue;
                    stepTimes[c].Add(total);
                    syncTimes[c].Add(total - before);
                    backwardTimes[c].Add(before);
                    cpuTimes[c].Add(cpu);
                    copyTimes[c].Add((parallel[c].LastSync.CopyInSeconds + parallel[c].LastSync.CopyOutSeconds) * 1e3);
                }
        var results = new Dictionary<string, object>();
        for (int c = 0; c < configs.Length; c++)
        {
            double step = Median(stepTimes[c]), sync = Median(syncTimes[c]), backward = Median(backwardTimes[c]);
            results[$"{configs[c]}_step_ms"] = step;
            results[$"{configs[c]}_after_backward_ms"] = sync;
            results[$"{configs[c]}_forward_backward_ms"] = backward;
            double cpu = Median(cpuTimes[c]), copies = Median(copyTimes[c]);
            results[$"{configs[c]}_forward_backward_cpu_ms"] = cpu;
            results[$"{configs[c]}_copies_ms"] = copies;
            if (group.Rank == 0)
                Console.WriteLine($"overlap-bench {configs[c],-12} {parallel[c].Sync,-12} {(parallel[c].GradientAsBucketView ? "views" : "copies"),-6} buckets {parallel[c].BucketBytes.Count,2}: " +
                                  $"step median {step:0.0} ms (mean {stepTimes[c].Average():0.0}), forward+backward {backward:0.0} ms, sync after backward {sync:0.00} ms " +
                                  $"(copies {copies:0.00} ms), thread CPU of forward+backward {cpu:0.0} ms, n={stepTimes[c].Count}");
        }
        foreach (var p in parallel) p.Dispose();
        return results;
    }

    // Args: model, rounds. The gradient handling of post-backward sync alone, copies vs bucket views, alternating every
    // round: what backward's AccumulateGrad does (copies: takes the new gradient as .grad; views: adds it into the zeroed
    // view in place, as libtorch does when .grad is defined) plus DataParallel's own work before and after the all-reduce
    // (views: zeroing and attaching; copies: cat into a fresh flat buffer and copy back). The all-reduce is not counted.
    public static Dictionary<string, object> BucketViewBench(IProcessGroup group, string model, int rounds)
    {
        torch.set_num_threads(1);
        torch.manual_seed(3);
        var detector = ModelFactory.Create(model, nc: 80);
        var parameters = detector.parameters().Where(p => p.requires_grad).ToArray();
        var configs = new[] { ("copies", false), ("views", true) };
        var parallel = configs.Select(c => new DataParallel(detector, group, gradientAsBucketView: c.Item2)).ToArray();
        var times = configs.Select(_ => new List<double>()).ToArray();
        for (int round = -2; round < rounds; round++)
            for (int c = 0; c < configs.Length; c++)
            {
                using var scope = NewDisposeScope();
                // backward's fresh gradients (allocated by the backward kernels either way; not timed)
                var fresh = parameters.Select(p => randn_like(p)).ToArray();
                group.Barrier();
                long start = Stopwatch.GetTimestamp();
                parallel[c].BeginMicroStep(synchronize: true);
                using (no_grad())
                    for (int i = 0; i < parameters.Length; i++)
                    {
                        if (parallel[c].GradientAsBucketView)
                        {
                            using var grad = parameters[i].grad!;
                            grad.add_(fresh[i]);                     // AccumulateGrad: variable_grad += new_grad
                        }
                        else parameters[i].grad = fresh[i];          // AccumulateGrad: steals new_grad
                    }
                double accumulate = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                parallel[c].AverageGradients();
                double copies = (parallel[c].LastSync.CopyInSeconds + parallel[c].LastSync.CopyOutSeconds) * 1e3;
                foreach (var p in parameters) p.grad = null;            // the optimiser's zero_grad(set_to_none)
                if (round >= 0) times[c].Add(accumulate + copies);
            }
        var results = new Dictionary<string, object>();
        for (int c = 0; c < configs.Length; c++)
        {
            results[$"{configs[c].Item1}_ms"] = Median(times[c]);
            if (group.Rank == 0)
                Console.WriteLine($"bucket-view-bench {configs[c].Item1,-7}: gradient handling median {Median(times[c]):0.00} ms " +
                                  $"(mean {times[c].Average():0.00}, min {times[c].Min():0.00}), n={times[c].Count}");
        }
        foreach (var p in parallel) p.Dispose();
        return results;
    }

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }
}
