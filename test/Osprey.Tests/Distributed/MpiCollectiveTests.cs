using Osprey.Distributed;
using Xunit.Abstractions;
using static Osprey.Tests.Distributed.WorkerRunner;

namespace Osprey.Tests.Distributed;

/// <summary>All-reduce, broadcast, all-gather and barrier between real processes under mpirun.</summary>
[Collection("multi-process")]
public class MpiCollectiveTests(ITestOutputHelper log)
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void CollectivesGiveTheSameExactResultsOnEveryRank(int world)
    {
        string folder = TempFolder($"collectives{world}");
        LaunchResult run = Run(world, "collectives", folder);
        log.WriteLine($"np={world}: exit {run.ExitCode} in {run.Elapsed.TotalSeconds:0.0} s\n{run.Text}");
        Assert.True(run.ExitCode == 0, run.Text);

        // Rank r contributed arange(n) * (r + 1).
        float factor = world * (world + 1) / 2f;
        for (int rank = 0; rank < world; rank++)
        {
            var results = ReadRank(folder, rank);
            Assert.Equal(rank, results.GetProperty("rank").GetInt32());
            Assert.Equal(world, results.GetProperty("worldSize").GetInt32());
            foreach (int n in new[] { 0, 1, 1001 })
            {
                float[] expectedSum = Enumerable.Range(0, n).Select(i => i * factor).ToArray();
                Assert.Equal(expectedSum, Floats(results, $"allreduce_Sum_{n}"));
                float[] expectedAverage = expectedSum.Select(v => v / world).ToArray();
                float[] average = Floats(results, $"allreduce_Average_{n}");
                Assert.Equal(n, average.Length);
                for (int i = 0; i < n; i++) Assert.Equal(expectedAverage[i], average[i], 1e-3f);
            }

            // 7 M floats (28 MB): exact against the same float32 arithmetic, and the last element by formula.
            Assert.Equal(0f, results.GetProperty("large_max_error").GetSingle());
            Assert.Equal((7_000_000 - 1) * (double)factor, results.GetProperty("large_last").GetSingle(), 7_000_000 * factor * 1e-6);
            log.WriteLine($"rank {rank}: 28 MB all-reduce {results.GetProperty("large_ms").GetDouble():0.0} ms (first, cold)");

            float[] baseValues = { 1, 2, 3, 4 };
            foreach (string dtype in new[] { "BFloat16", "Float16" })
            {
                Assert.Equal(dtype, results.GetProperty($"allreduce_{dtype}_Sum_dtype").GetString());
                Assert.Equal(baseValues.Select(v => v * factor), Floats(results, $"allreduce_{dtype}_Sum"));
                Assert.Equal(dtype, results.GetProperty($"allreduce_{dtype}_Average_dtype").GetString());
                float[] average = Floats(results, $"allreduce_{dtype}_Average");
                for (int i = 0; i < 4; i++) Assert.Equal(baseValues[i] * factor / world, average[i], 0.02f);
            }

            Assert.Equal(new[] { (long)factor, 10L * (long)factor, world * (1L << 40) }, Longs(results, "allreduce_int64_sum"));
            Assert.Equal(new long[] { world - 1, 0 }, Longs(results, "allreduce_int32_max"));

            // Only column 1 of rank r's (r + 1) * [[0, 1, 2], [3, 4, 5]] was reduced; the rest is untouched.
            float own = rank + 1;
            Assert.Equal(new[] { 0, 1 * factor, 2 * own, 3 * own, 4 * factor, 5 * own }, Floats(results, "allreduce_noncontiguous_matrix"));

            Assert.Equal(new float[] { 100, 101, 102, 103, 104 }, Floats(results, "broadcast_root1"));
            Assert.Equal(new[] { 1.5f, -2.25f }, Floats(results, "broadcast_bf16"));

            Assert.Equal(new long[] { 2 * world, 3 }, Longs(results, "allgather_shape"));
            Assert.Equal(Enumerable.Range(0, world).SelectMany(r => Enumerable.Repeat((float)r, 6)), Floats(results, "allgather"));
            Assert.Equal(Enumerable.Range(0, world).Select(r => 7L * r), Longs(results, "allgather_scalar"));
            Assert.Equal(new long[] { 0, 4 }, Longs(results, "allgather_empty_shape"));

            // Rank 0 reached the barrier 300 ms late: everyone else waited for it.
            if (rank != 0) Assert.True(results.GetProperty("barrier_ms").GetDouble() > 200, "barrier did not wait for rank 0");
        }
    }
}
