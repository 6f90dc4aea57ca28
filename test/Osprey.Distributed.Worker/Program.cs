// One rank of Osprey's multi-process tests. Usage: Osprey.Distributed.Worker <scenario> <output folder> [args]
// Scenarios: collectives, kill, hang, bench, validate, rendezvous, autobatch, nccl-smoke (GPU machine: one rank per GPU, CUDA libtorch). Each rank writes rank<R>.json (results) into the folder;
// failures go to stderr with the rank's name and a non-zero exit code.
using System.Diagnostics;
using System.Text.Json;
using Osprey.Distributed;
using TorchSharp;
using static TorchSharp.torch;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Osprey.Distributed.Worker <collectives|kill|hang|bench|rendezvous> <output folder> [args]");
    return 2;
}
string scenario = args[0], folder = args[1];
Directory.CreateDirectory(folder);
var environment = DistributedEnvironment.FromProcess();
File.WriteAllText(Path.Combine(folder, $"rank{environment.Rank}.pid"), Environment.ProcessId.ToString());

if (scenario == "rendezvous") return Scenarios.Rendezvous(environment, folder);
if (scenario == "nccl-smoke") return Scenarios.NcclSmoke(environment, folder);

using IProcessGroup group = ProcessGroupFactory.Create(DeviceType.CPU, environment);
try
{
    var results = scenario switch
    {
        "collectives" => Scenarios.Collectives(group),
        "kill" => Scenarios.KillMidCollective(group, folder),
        "hang" => Scenarios.HangMidCollective(group),
        "bench" => Scenarios.Bench(group, args.Skip(2).Select(long.Parse).ToArray()),
        "autobatch" => Scenarios.AutoBatchAgreement(group),
        "validate" => Scenarios.Validate(group, args[2], args[3], int.Parse(args[4]), int.Parse(args[5]), float.Parse(args[6], System.Globalization.CultureInfo.InvariantCulture)),
        _ => throw new ArgumentException($"unknown scenario {scenario}"),
    };
    results["rank"] = group.Rank;
    results["worldSize"] = group.WorldSize;
    File.WriteAllText(Path.Combine(folder, $"rank{group.Rank}.json"), JsonSerializer.Serialize(results));
    group.Barrier();
    return 0;
}
catch (DistributedException e)
{
    Console.Error.WriteLine($"osprey worker: {e.Message}");
    group.Abort(3);
    return 3;
}

static class Scenarios
{
    // Each rank's "device" has its own memory line; the ranks must agree on the smallest batch.
    public static Dictionary<string, object> AutoBatchAgreement(IProcessGroup group)
    {
        double slope = group.Rank == 0 ? 0.3 : 0.6; // 8 GiB, 1 reserved: int((4 − 0.5) / slope) = 11 on rank 0, 5 on rank 1
        var decided = Osprey.Training.AutoBatch.Decide(new LineProbe(slope), 640);
        int agreed = new DataParallel(group).SmallestOverRanks(decided.Batch, CPU);
        return new Dictionary<string, object> { ["mine"] = decided.Batch, ["agreed"] = agreed };
    }

    sealed class LineProbe(double slope) : Osprey.Training.IDeviceMemoryProbe
    {
        public string DeviceName => "CUDA:0";
        public Osprey.Training.DeviceMemory Memory() => new("line", 8L << 30, 1L << 30, 0);
        public double? Profile(int batchSize) => 0.5 + slope * batchSize;
    }

    public static Dictionary<string, object> Collectives(IProcessGroup group)
    {
        using var scope = torch.NewDisposeScope();
        int rank = group.Rank, world = group.WorldSize;
        var results = new Dictionary<string, object>();

        // Rank r contributes arange(n) * (r + 1): every rank's share is visible in the sum.
        foreach (long n in new long[] { 0, 1, 1001 })
        {
            foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Average })
            {
                var t = arange(n, dtype: ScalarType.Float32) * (rank + 1);
                group.AllReduce(t, op);
                results[$"allreduce_{op}_{n}"] = t.data<float>().ToArray();
            }
        }

        // A buffer larger than a gradient bucket: 7 M floats (28 MB). Reported as a few numbers, not the data.
        const long big = 7_000_000;
        var large = arange(big, dtype: ScalarType.Float32) * (rank + 1);
        var stopwatch = Stopwatch.StartNew();
        group.AllReduce(large, ReduceOp.Sum);
        results["large_ms"] = stopwatch.Elapsed.TotalMilliseconds;
        float factor = world * (world + 1) / 2f;
        var expected = arange(big, dtype: ScalarType.Float32) * factor;
        results["large_max_error"] = (large - expected).abs().max().item<float>();
        results["large_last"] = large[big - 1].item<float>();
        results["large_sum"] = large.to_type(ScalarType.Float64).sum().item<double>();

        // 16-bit types: rank r holds (r + 1) * [1, 2, 3, 4] (exact in both), summed and averaged.
        foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float16 })
        {
            foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Average })
            {
                var t = (tensor(new float[] { 1, 2, 3, 4 }) * (rank + 1)).to_type(dtype);
                group.AllReduce(t, op);
                results[$"allreduce_{dtype}_{op}_dtype"] = t.dtype.ToString();
                results[$"allreduce_{dtype}_{op}"] = t.to_type(ScalarType.Float32).data<float>().ToArray();
            }
        }

        // Integers (counts): sum and max.
        var counts = tensor(new long[] { rank + 1, 10L * (rank + 1), 1L << 40 });
        group.AllReduce(counts, ReduceOp.Sum);
        results["allreduce_int64_sum"] = counts.data<long>().ToArray();
        var maxima = tensor(new int[] { rank, -rank });
        group.AllReduce(maxima, ReduceOp.Max);
        results["allreduce_int32_max"] = maxima.data<int>().ToArray();

        // A non-contiguous view is reduced in place through a copy.
        var matrix = arange(6, dtype: ScalarType.Float32).reshape(2, 3) * (rank + 1);
        var column = matrix[TensorIndex.Colon, 1];
        group.AllReduce(column, ReduceOp.Sum);
        results["allreduce_noncontiguous_matrix"] = matrix.flatten().data<float>().ToArray();

        // Broadcast from root 1 (root 0 in a world of one): other ranks start with -1.
        int root = Math.Min(1, world - 1);
        var broadcast = rank == root ? arange(5, dtype: ScalarType.Float32) + 100 : full(5, -1f);
        group.Broadcast(broadcast, root);
        results["broadcast_root1"] = broadcast.data<float>().ToArray();
        var broadcast16 = (rank == root ? tensor(new float[] { 1.5f, -2.25f }) : zeros(2)).to_type(ScalarType.BFloat16);
        group.Broadcast(broadcast16, root);
        results["broadcast_bf16"] = broadcast16.to_type(ScalarType.Float32).data<float>().ToArray();

        // All-gather: rank r gives a (2, 3) block filled with r; the result is (2 * world, 3) in rank order.
        var gathered = group.AllGather(full(2, 3, (float)rank));
        results["allgather_shape"] = gathered.shape;
        results["allgather"] = gathered.flatten().data<float>().ToArray();
        var gatheredScalar = group.AllGather(tensor((long)rank * 7));
        results["allgather_scalar"] = gatheredScalar.data<long>().ToArray();
        var gatheredEmpty = group.AllGather(zeros(0, 4));
        results["allgather_empty_shape"] = gatheredEmpty.shape;

        // Barrier: nobody leaves before the slowest rank (rank 0 sleeps 300 ms) arrives.
        if (rank == 0) Thread.Sleep(300);
        var barrierWatch = Stopwatch.StartNew();
        group.Barrier();
        results["barrier_ms"] = barrierWatch.Elapsed.TotalMilliseconds;
        return results;
    }

    // Rank 1 SIGKILLs itself while the others are in an all-reduce; the collective timeout is long (120 s) so that
    // what ends the job is mpirun noticing the death.
    public static Dictionary<string, object> KillMidCollective(IProcessGroup group, string folder)
    {
        group.Timeout = TimeSpan.FromSeconds(120);
        using var scope = torch.NewDisposeScope();
        var buffer = ones(1_000_000);
        for (int step = 0; step < 1000; step++)
        {
            if (group.Rank == 1 && step == 3)
            {
                File.WriteAllText(Path.Combine(folder, "killed_at_ms"), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString());
                Process.GetCurrentProcess().Kill(); // SIGKILL on Unix: no handler runs
            }
            group.AllReduce(buffer, ReduceOp.Average);
            if (group.Rank != 1 && step == 4) Thread.Sleep(100);
        }
        return new Dictionary<string, object> { ["finished"] = true };
    }

    // Rank 1 stops calling collectives (a hang); the others' all-reduce times out after 3 s and they abort the job.
    public static Dictionary<string, object> HangMidCollective(IProcessGroup group)
    {
        group.Timeout = TimeSpan.FromSeconds(3);
        using var scope = torch.NewDisposeScope();
        var buffer = ones(1000);
        group.AllReduce(buffer);
        if (group.Rank == 1) Thread.Sleep(TimeSpan.FromMinutes(10));
        group.AllReduce(buffer);
        return new Dictionary<string, object> { ["finished"] = true };
    }

    // Sharded validation: this rank's shard (ValidationSampler, batch = global / world), gathered by DetectionValidator.
    public static Dictionary<string, object> Validate(IProcessGroup group, string data, string weights, int imageSize,
        int globalBatch, float confidence)
    {
        var dataset = Osprey.Data.DetectionDataset.Load(Osprey.Data.DatasetCatalog.Resolve(data), Osprey.Data.DatasetSplit.Val);
        var model = Osprey.Models.ModelFactory.Create(weights);
        using var loader = Osprey.Data.DataLoader.ForValidation(dataset, new Osprey.Data.LoaderOptions(
            ImageSize: imageSize, BatchSize: globalBatch / group.WorldSize, Workers: 1, Rank: group.Rank, WorldSize: group.WorldSize));
        var loss = new Osprey.Losses.DetectionLoss(new Osprey.Losses.DetectionLossOptions
        {
            NumClasses = model.Nc, RegMax = model.RegMax, Strides = model.Strides.ToArray(),
        });
        var result = Osprey.Evaluation.DetectionValidator.Run(model, loader, torch.CPU,
            new Osprey.Evaluation.NmsOptions { ConfidenceThreshold = confidence }, loss, collectPredictions: true, parallel: new DataParallel(group));
        return ValidationSummary(result);
    }

    public static Dictionary<string, object> ValidationSummary(Osprey.Evaluation.ValidationResult result) => new()
    {
        ["metrics"] = new[] { result.Metrics.Precision, result.Metrics.Recall, result.Metrics.MAP50, result.Metrics.MAP50To95 },
        ["perClass"] = result.Metrics.Classes.SelectMany(c => new double[] { c.ClassId, c.Images, c.Instances, c.Precision, c.Recall, c.AP50, c.AP50To95 }).ToArray(),
        ["confusion"] = result.Confusion.ToArray().Cast<long>().ToArray(),
        ["losses"] = result.Losses!.ToArray(),
        ["images"] = result.Images,
        ["instances"] = result.Instances,
        ["predictions"] = result.Predictions.Count,
    };

    // All-reduce Sum timings: a warm-up, then the median of several runs, blocking and polled (timeout) modes.
    public static Dictionary<string, object> Bench(IProcessGroup group, long[] sizes)
    {
        var results = new Dictionary<string, object>();
        foreach (long n in sizes)
        {
            foreach (bool polled in new[] { false, true })
            {
                group.Timeout = polled ? TimeSpan.FromSeconds(60) : Timeout.InfiniteTimeSpan;
                using var scope = torch.NewDisposeScope();
                var buffer = ones(n);
                group.AllReduce(buffer);
                var times = new List<double>();
                for (int i = 0; i < 7; i++)
                {
                    group.Barrier();
                    var watch = Stopwatch.StartNew();
                    group.AllReduce(buffer);
                    times.Add(watch.Elapsed.TotalMilliseconds);
                }
                times.Sort();
                double ms = times[times.Count / 2];
                double megabytes = n * 4 / 1e6;
                string key = $"{(polled ? "polled" : "blocking")}_{n}";
                results[key + "_ms"] = ms;
                // Bus bandwidth as nccl-tests defines it for all-reduce: size * 2 (W - 1) / W / time.
                results[key + "_busbw_GBps"] = megabytes / 1e3 * 2 * (group.WorldSize - 1) / group.WorldSize / (ms / 1e3);
                if (group.Rank == 0)
                    Console.WriteLine($"bench {key}: {megabytes:0.0} MB all-reduce {ms:0.00} ms, " +
                                      $"algbw {megabytes / ms:0.00} GB/s");
            }
        }
        return results;
    }

    // Torchrun-style processes exchange a 128-byte id through the TCP rendezvous (rank 0 makes it).
    public static int Rendezvous(DistributedEnvironment environment, string folder)
    {
        byte[]? id = environment.Rank == 0 ? Enumerable.Range(0, 128).Select(i => (byte)(i * 7 + 3)).ToArray() : null;
        byte[] received = TcpRendezvous.Broadcast(id, 128, environment, TimeSpan.FromSeconds(20));
        File.WriteAllText(Path.Combine(folder, $"rank{environment.Rank}.json"),
            JsonSerializer.Serialize(new Dictionary<string, object> { ["rank"] = environment.Rank, ["id"] = Convert.ToHexString(received) }));
        return 0;
    }

    // GPU machine check: NCCL on CUDA tensors, one rank per GPU (works with a single rank on a single GPU).
    // Launch: dotnet Osprey.Distributed.Worker.dll nccl-smoke <folder> (or mpirun -np N / spawn mode with N GPUs).
    public static int NcclSmoke(DistributedEnvironment environment, string folder)
    {
        using var group = new NcclProcessGroup(environment, environment.LocalRank, new ProcessGroupOptions { Timeout = TimeSpan.FromSeconds(30) });
        using var scope = torch.NewDisposeScope();
        var device = torch.device(DeviceType.CUDA, environment.LocalRank);
        int world = group.WorldSize, rank = group.Rank;
        float factor = world * (world + 1) / 2f;
        var failures = new List<string>();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16 })
        {
            foreach (long n in new long[] { 0, 1, 1001, 7_000_000 })
            {
                var values = (arange(n, dtype: ScalarType.Float32, device: device) % 64 * (rank + 1)).to_type(dtype);
                group.AllReduce(values, ReduceOp.Sum);
                var expected = (arange(n, dtype: ScalarType.Float32, device: device) % 64 * factor).to_type(dtype);
                if (n > 0 && !values.equal(expected).item<bool>()) failures.Add($"all-reduce {dtype} n={n}");
            }
        }
        var broadcast = rank == 0 ? arange(5, dtype: ScalarType.Float32, device: device) : zeros(5, device: device);
        group.Broadcast(broadcast, 0);
        if (!broadcast.cpu().equal(arange(5, dtype: ScalarType.Float32)).item<bool>()) failures.Add("broadcast");
        var gathered = group.AllGather(full(2, 3, (float)rank, device: device));
        if (gathered.shape[0] != 2 * world) failures.Add("all-gather shape");
        group.Barrier();
        var watch = Stopwatch.StartNew();
        var big = ones(17_000_000, device: device);
        for (int i = 0; i < 10; i++) group.AllReduce(big);
        group.Barrier();
        double ms = watch.Elapsed.TotalMilliseconds / 10;
        File.WriteAllText(Path.Combine(folder, $"rank{rank}.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["rank"] = rank, ["failures"] = failures, ["allreduce_68MB_ms"] = ms,
        }));
        Console.WriteLine($"nccl-smoke rank {rank}/{world}: {(failures.Count == 0 ? "ok" : string.Join(", ", failures))}; 68 MB all-reduce {ms:0.00} ms");
        return failures.Count == 0 ? 0 : 1;
    }
}
