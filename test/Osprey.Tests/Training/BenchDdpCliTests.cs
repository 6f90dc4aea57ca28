using System.Globalization;
using System.Text.RegularExpressions;
using Osprey.Tests.Distributed;
using Osprey.Tests.Models;
using Osprey.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Training;

/// <summary><c>osprey bench ddp</c> end to end: a tiny model at 64 px, one process and two MPI ranks, two small buffers.</summary>
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

        // step table: world, threads/rank, batch, step, forward, backward, all-reduce, optimiser (ms)
        var rows = Regex.Matches(output, @"^\s*([12])\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", RegexOptions.Multiline)
            .ToDictionary(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m => m.Groups);
        Assert.Equal(new[] { 1, 2 }, rows.Keys.Order());
        Assert.Equal(Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture), rows[1][2].Value);
        Assert.Equal(Math.Max(1, Environment.ProcessorCount / 2).ToString(CultureInfo.InvariantCulture), rows[2][2].Value);
        Assert.All(rows.Values, r => Assert.Equal("4", r[3].Value));
        Assert.Equal(0, D(rows[1][7].Value), 0.05);           // one process: no gradient all-reduce
        Assert.True(D(rows[2][7].Value) > 0, "two ranks all-reduce their gradients");

        // each world's median step is the median of its printed timed steps (3, warm-up excluded)
        var medians = new Dictionary<int, double>();
        foreach (int world in new[] { 1, 2 })
        {
            double[] steps = Regex.Match(output, $@"world {world} step ms: ([\d. ]+)").Groups[1].Value.Trim()
                .Split(' ').Select(D).ToArray();
            Assert.Equal(3, steps.Length);
            medians[world] = Median(steps);
            Assert.Equal(medians[world], D(rows[world][4].Value), 1e-9);
        }
        // overhead = world-2 median / world-1 median − 1
        double overhead = D(Regex.Match(output, @"overhead world 2 vs 1: ([+-][\d.]+) %").Groups[1].Value);
        Assert.Equal((medians[2] / medians[1] - 1) * 100, overhead, 0.1);    // printed to 0.1 %, from ms printed to 0.01

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
        Assert.Equal(rows[1][5].Value, compute[2].Value);
        Assert.Equal(rows[1][6].Value, compute[3].Value);
        Assert.Equal(rows[1][8].Value, compute[4].Value);
        double computeMs = D(compute[1].Value);
        Assert.Equal(D(compute[2].Value) + D(compute[3].Value) + D(compute[4].Value), computeMs, 0.02);
        double slope = (reduce[1].Ms - reduce[0].Ms) / (16_777_216 - 1_048_576);     // ms per byte at 2 ranks: 1 / B
        double intercept = Math.Max(0, reduce[0].Ms - slope * 1_048_576);           // 2α
        long gradients = DdpBenchmark.GradientBytes(model);
        double expected = 7 * intercept + 1.75 * slope * gradients;                 // 14α + 2·7/8 · n / B
        double allReduceMs = D(Regex.Match(output, @"all-reduce per step ([\d.]+) ms").Groups[1].Value);
        // the times are printed to 0.01 ms: the line through them moves by up to that much
        double rounding = 7 * (0.005 + 0.01 * 1_048_576.0 / (16_777_216 - 1_048_576)) + 1.75 * gradients * 0.01 / (16_777_216 - 1_048_576);
        Assert.Equal(expected, allReduceMs, rounding + 0.01 * expected + 0.01);
        double serial = D(Regex.Match(output, @"no overlap: step ([\d.]+) ms, efficiency ([\d.]+) %").Groups[1].Value);
        Assert.Equal(computeMs + allReduceMs, serial, 0.02);
        double efficiency = D(Regex.Match(output, @"no overlap: step [\d.]+ ms, efficiency ([\d.]+) %").Groups[1].Value);
        Assert.Equal(computeMs / serial * 100, efficiency, 0.1);      // printed to 0.1 %, from ms printed to 0.01
        Assert.Matches(@"target ≥ 95 %: (met|not met)", output);
        Assert.Contains("assumes: ring: α = ", output);
    }
}
