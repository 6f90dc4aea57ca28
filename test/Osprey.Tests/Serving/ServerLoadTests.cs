using System.Diagnostics;
using System.Net;
using Osprey.Inference;
using Osprey.Serving;
using Osprey.Tests.Data;

namespace Osprey.Tests.Serving;

/// <summary>
/// A bounded load test on loopback: bursts of 64 concurrent requests against a slowed model and a queue of 4; the excess
/// gets 503 with a JSON error and Retry-After, the rest 200, the server serves on, and memory stays flat over the bursts.
/// </summary>
public class ServerLoadTests(Xunit.Abstractions.ITestOutputHelper log)
{
    const int Burst = 64, MaxQueue = 4, Bursts = 5;

    [Fact]
    public async Task BurstsOverTheQueueLimitGet503AndMemoryStaysFlat()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string model = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            // 40 ms a batch of at most 2: the worker takes ~25 images a second, the burst arrives within a fraction of one
            await using var scope = await ServerScope.StartAsync(
                new ServeOptions { Model = model, Predict = ServeTestSupport.TinyOptions, MaxBatch = 2, MaxQueue = MaxQueue },
                path => new WrappedDetector(Predictor.Load(path, ServeTestSupport.TinyOptions), TimeSpan.FromMilliseconds(40)));
            var jpeg = ServeTestSupport.Jpeg(640, 480, seed: 3);     // 0.9 MB decoded: a leaked image per request would show
            int ok = 0, refused = 0;
            long managedAfterFirst = 0, workingSetAfterFirst = 0;
            var clock = Stopwatch.StartNew();
            for (int burst = 0; burst < Bursts; burst++)
            {
                var responses = await Task.WhenAll(Enumerable.Range(0, Burst).Select(_ => scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg))));
                int burstOk = 0, burstRefused = 0;
                foreach (var response in responses)
                {
                    using (response)
                    {
                        if (response.StatusCode == HttpStatusCode.OK) burstOk++;
                        else
                        {
                            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
                            Assert.Contains("the queue is full (4 images waiting", (await ServeTestSupport.JsonOf(response)).GetProperty("error").GetString());
                            burstRefused++;
                        }
                    }
                }
                Assert.True(burstRefused > 0, $"burst {burst}: all {Burst} answered; the queue limit never bit");
                Assert.True(burstOk >= MaxQueue, $"burst {burst}: only {burstOk} answered; a full queue's worth ({MaxQueue}) must be");
                log.WriteLine($"burst {burst}: {burstOk} × 200, {burstRefused} × 503");
                ok += burstOk;
                refused += burstRefused;
                using (var single = await scope.Client.PostAsync("/v1/detect", ServeTestSupport.Body(jpeg)))
                    Assert.Equal(HttpStatusCode.OK, single.StatusCode);                // serves on after the burst
                ok++;
                if (burst == 0) (managedAfterFirst, workingSetAfterFirst) = Memory();
            }
            var (managed, workingSet) = Memory();
            log.WriteLine($"after burst 1 → {Bursts}: managed {managedAfterFirst >> 20} → {managed >> 20} MB, working set {workingSetAfterFirst >> 20} → {workingSet >> 20} MB, {clock.Elapsed.TotalSeconds:0.0} s");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(50), $"{Bursts} bursts took {clock.Elapsed.TotalSeconds:0} s");
            // (Bursts − 1) × 64 leaked 0.9 MB images would be 230 MB
            Assert.True(managed - managedAfterFirst < 16 << 20, $"managed memory grew {(managed - managedAfterFirst) >> 20} MB over {Bursts - 1} bursts");
            Assert.True(workingSet - workingSetAfterFirst < 96 << 20, $"working set grew {(workingSet - workingSetAfterFirst) >> 20} MB over {Bursts - 1} bursts");

            string metrics = await scope.MetricsText();
            Assert.Equal(refused, ServeTestSupport.Metric(metrics, "osprey_requests_total", ("route", "/v1/detect"), ("code", "503")));
            Assert.Equal(ok, ServeTestSupport.Metric(metrics, "osprey_requests_total", ("route", "/v1/detect"), ("code", "200")));
            Assert.Equal(refused, ServeTestSupport.Metric(metrics, "osprey_dropped_frames_total", ("source", "request")));
            Assert.Equal(ok, ServeTestSupport.Metric(metrics, "osprey_frames_total", ("source", "request")));
            Assert.True(ServeTestSupport.Metric(metrics, "osprey_batch_size_sum") == ok);
            Assert.Equal(0, ServeTestSupport.Metric(metrics, "osprey_queue_depth"));
            using var health = await scope.Client.GetAsync("/health");
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    static (long Managed, long WorkingSet) Memory()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        return (GC.GetTotalMemory(forceFullCollection: true), process.WorkingSet64);
    }
}
