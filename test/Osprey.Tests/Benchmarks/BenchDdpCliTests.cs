using Osprey.Models;
using System.Globalization;
using System.Text.RegularExpressions;
using Osprey.Benchmarks;
using Osprey.Tests.Distributed;
using Osprey.Tests.Models;
using Osprey.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Benchmarks;

/// <summary><c>osprey bench ddp</c> end to end: a tiny model at 64 px; one process, one rank alone, two independent
/// processes side by side and two MPI ranks; two small buffers.</summary>
[Collection("multi-process")]
public class BenchDdpCliTests(ITestOutputHelper log)
{
    static double D(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    [Fact]
    public void PrintsStepTimesTheirRatioAllReduceBandwidthsAndAModelConsistentWithThem()
    {
        WorkerRunner.RequireMpirun();
        string dir = TestModels.TempDir();
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());
        string? saved = Environment.GetEnvironmentVariable(DdpBenchmark.BuffersVariable);
        (int code, string output, string err) result;
        try
        {
            Environment.SetEnvironmentVariable(DdpBenchmark.BuffersVariable, "1048576,16777216");
            result = Osprey.Tests.Cli.CliAppTests.Run("bench", "ddp", $"model={model}", "imgsz=64", "batch=4", "steps=3", "device=cpu");
        }
        finally
        {
            Environment.SetEnvironmentVariable(DdpBenchmark.BuffersVariable, saved);
        }
        var (code, output, err) = result;
        log.WriteLine(output);
        Assert.Equal("", err);
        Assert.Equal(0, code);

        // step table: run, ranks, threads/rank, batch/rank, step, forward, backward, all-reduce, optimiser (ms)
        var rows = Regex.Matches(output, @"^\s*(one process|one rank alone|side by side|data parallel)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s*$", RegexOptions.Multiline)
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups);
        string[] runs = { "one process", "one rank alone", "side by side", "data parallel" };
        Assert.Equal(runs.Order(), rows.Keys.Order());
        string cores = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture);
        string perRank = Math.Max(1, Environment.ProcessorCount / 2).ToString(CultureInfo.InvariantCulture);
        // strong scaling keeps the global batch (4) and the cores; weak scaling keeps one rank's batch (2) and threads
        Assert.Equal(new[] { "1", cores, "4" }, new[] { rows["one process"][2].Value, rows["one process"][3].Value, rows["one process"][4].Value });
        Assert.Equal(new[] { "1", perRank, "2" }, new[] { rows["one rank alone"][2].Value, rows["one rank alone"][3].Value, rows["one rank alone"][4].Value });
        foreach (string run in new[] { "side by side", "data parallel" })
            Assert.Equal(new[] { "2", perRank, "2" }, new[] { rows[run][2].Value, rows[run][3].Value, rows[run][4].Value });
        foreach (string run in runs.Take(3)) Assert.Equal(0, D(rows[run][8].Value), 0.05);   // no gradient all-reduce
        Assert.True(D(rows["data parallel"][8].Value) > 0, "two ranks all-reduce their gradients");

        // each run's median step is the median of its printed timed steps (3, warm-up excluded)
        var medians = new Dictionary<string, double>();
        foreach (string run in runs)
        {
            double[] steps = Regex.Match(output, $@"^{run} step ms: ([\d. ]+)$", RegexOptions.Multiline).Groups[1].Value.Trim()
                .Split(' ').Select(D).ToArray();
            Assert.Equal(3, steps.Length);
            medians[run] = Median(steps);
            Assert.Equal(medians[run], D(rows[run][5].Value), 1e-9);
        }
        // each overhead is a ratio of two medians − 1: printed to 0.1 %, from medians printed to 0.01 ms
        void Ratio(string pattern, string over, string under)
        {
            double printed = D(Regex.Match(output, pattern).Groups[1].Value);
            double a = medians[over], b = medians[under];
            double tolerance = 0.05 + 100 * 0.005 / b * (1 + a / b) * 1.01 + 1e-9;
            Assert.True(Math.Abs((a / b - 1) * 100 - printed) <= tolerance,
                $"{pattern}: printed {printed} %, from the medians {(a / b - 1) * 100:0.000} % (± {tolerance:0.000})");
        }
        Ratio(@"strong scaling \(global batch 4, \d+ threads in all\): 2 ranks vs one process ([+-][\d.]+) % \(target ≤ 5 %: (met|not met)\)",
            "data parallel", "one process");
        Ratio(@"weak scaling \(DDP's definition: batch 2 and \d+ thread\(s\) per rank\): 2 ranks vs one rank alone ([+-][\d.]+) % \(target ≤ 5 %: (met|not met)\)",
            "data parallel", "one rank alone");
        Ratio(@"sharing the machine \(side by side vs alone, no communication\): ([+-][\d.]+) %", "side by side", "one rank alone");
        Ratio(@"data parallelism \(data parallel vs side by side\): ([+-][\d.]+) %", "data parallel", "side by side");

        // breakdown: one row per process of each multi-process run and the lone rank; the parts add up to the step
        var parts = Regex.Matches(output, @"^\s*(alone|side by side|data parallel)\s+(\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s+(\d+\.\d\d)\s*$", RegexOptions.Multiline)
            .Select(m => (Run: m.Groups[1].Value, Rank: m.Groups[2].Value, Step: D(m.Groups[3].Value), Compute: D(m.Groups[4].Value),
                Copies: D(m.Groups[5].Value), Wait: D(m.Groups[6].Value), Transfer: D(m.Groups[7].Value))).ToArray();
        Assert.Equal(new[] { "alone 0", "side by side 0", "side by side 1", "data parallel 0", "data parallel 1" }, parts.Select(p => $"{p.Run} {p.Rank}"));
        foreach (var p in parts)
        {
            Assert.Equal(p.Step, p.Compute + p.Copies + p.Wait + p.Transfer, 0.025);      // five values printed to 0.01
            if (p.Run != "data parallel") Assert.Equal((0.0, 0.0), (p.Wait, p.Transfer)); // nothing communicated
        }
        Assert.True(parts.Where(p => p.Run == "data parallel").Any(p => p.Transfer > 0), "data-parallel ranks transfer gradients");
        foreach (string name in new[] { "BN buffer broadcast", "loss normaliser", "loss items", "gradients" })
            Assert.Matches($@"  {name}: wait \d+\.\d\d / \d+\.\d\d ms, transfer \d+\.\d\d / \d+\.\d\d ms", output);
        Assert.Contains("gradients are all-reduced in place in the flat gradient buffers (no copies)", output);

        // all-reduce table: the two sizes at 2 MPI ranks; busbw = algbw (2(W − 1)/W = 1) = MB / ms
        var reduce = Regex.Matches(output, @"^\s*mpi\s+2\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", RegexOptions.Multiline)
            .Select(m => (MB: D(m.Groups[1].Value), Ms: D(m.Groups[2].Value), Alg: D(m.Groups[3].Value), Bus: D(m.Groups[4].Value))).ToArray();
        Assert.Equal(new[] { 1.05, 16.78 }, reduce.Select(r => r.MB));
        foreach (var r in reduce)
        {
            Assert.Equal(r.Alg, r.Bus);
            Assert.Equal(r.MB / r.Ms, r.Alg, r.Alg * (0.005 / r.Ms + 0.005 / r.MB) + 0.006); // MB, ms and GB/s printed to 0.01
        }

        // scaling model: compute = the one-process medians; all-reduce = the ring through the two measurements, 8 ranks
        var compute = Regex.Match(output, @"compute per step ([\d.]+) ms \(forward ([\d.]+), backward ([\d.]+), optimiser ([\d.]+)\)").Groups;
        Assert.Equal(rows["one process"][6].Value, compute[2].Value);
        Assert.Equal(rows["one process"][7].Value, compute[3].Value);
        Assert.Equal(rows["one process"][9].Value, compute[4].Value);
        double computeMs = D(compute[1].Value);
        Assert.Equal(D(compute[2].Value) + D(compute[3].Value) + D(compute[4].Value), computeMs, 0.02);
        double slope = (reduce[1].Ms - reduce[0].Ms) / (16_777_216 - 1_048_576);     // ms per byte at 2 ranks: 1 / B
        double intercept = Math.Max(0, reduce[0].Ms - slope * 1_048_576);           // 2α
        long gradients = DdpBenchmark.GradientBytes(model);
        // one bucket per optimiser group (biases, weights, BatchNorm weights: each far below 25 MiB), each a ring all-reduce
        var groups = ParameterGroups.Of(ModelFactory.Create(model));
        int buckets = new[] { groups.Biases, groups.Weights, groups.NormWeights }.Count(g => g.Count > 0);
        Assert.Contains($"gradients all-reduced in {buckets} bucket(s)", output);
        double expected = buckets * 7 * intercept + 1.75 * slope * gradients;        // per bucket 14α, + 2·7/8 · n / B
        double allReduceMs = D(Regex.Match(output, @"all-reduce per step ([\d.]+) ms").Groups[1].Value);
        // the times are printed to 0.01 ms: the line through them moves by up to that much
        double rounding = buckets * 7 * (0.005 + 0.01 * 1_048_576.0 / (16_777_216 - 1_048_576)) + 1.75 * gradients * 0.01 / (16_777_216 - 1_048_576);
        Assert.Equal(expected, allReduceMs, rounding + 0.01 * expected + 0.01);
        double serial = D(Regex.Match(output, @"no overlap: step ([\d.]+) ms, efficiency ([\d.]+) %").Groups[1].Value);
        Assert.Equal(computeMs + allReduceMs, serial, 0.02);
        double efficiency = D(Regex.Match(output, @"no overlap: step [\d.]+ ms, efficiency ([\d.]+) %").Groups[1].Value);
        Assert.Equal(computeMs / serial * 100, efficiency, 0.1);      // printed to 0.1 %, from ms printed to 0.01
        Assert.Matches(@"target ≥ 95 %: (met|not met)", output);
        Assert.Contains("assumes: ring: α = ", output);
    }
}
