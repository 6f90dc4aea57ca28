using Osprey.Cli;
using Osprey.Config;
using Osprey.Data;
using Osprey.Tests.Models;
using Osprey.Training;
using Xunit.Abstractions;

namespace Osprey.Tests.Training;

/// <summary>The trainer's step-time breakdown: reported per epoch, written to step_times.csv, adding up to the epoch's
/// training time, and the data wait following a slowed loader.</summary>
public class StepTimesTrainingTests(ITestOutputHelper log)
{
    static (double LastBatchSeconds, StepTimes Times, string Run) Train(string dir, string data, string model, string name, int delayMs)
    {
        Environment.SetEnvironmentVariable(FaultInjection.DataDelayVariable, delayMs > 0 ? delayMs.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
        try
        {
            double lastBatch = 0;
            StepTimes? times = null;
            var args = ArgsParser.Parse(new[] { $"data={data}", $"model={model}", "epochs=1", "imgsz=64", "batch=4", "workers=1",
                "device=cpu", $"project={dir}", $"name={name}", "plots=False", "val=False", "save=False" });
            var finished = new Trainer(args, e =>
            {
                if (e is BatchFinished b) lastBatch = b.Seconds;
                if (e is EpochFinished f) times = f.StepTimes;
            }).Train();
            return (lastBatch, times!, finished.RunDirectory);
        }
        finally
        {
            Environment.SetEnvironmentVariable(FaultInjection.DataDelayVariable, null);
        }
    }

    [Fact]
    public void PhasesAddUpToTheEpochAndDataWaitGrowsWithASlowLoader()
    {
        string dir = TestModels.TempDir();
        string data = ShapesDataset.EnsureGenerated(new ShapesOptions(ImageSize: 64, TrainImages: 16, ValImages: 4, Seed: 3), dir);
        string model = Path.Combine(dir, "tiny.yaml");
        File.WriteAllText(model, TestModels.TinyYaml());

        var (fastSeconds, fast, fastRun) = Train(dir, data, model, "fast", 0);
        const int delay = 250; // ms per sample, one worker, 4 samples per batch: a batch takes ≥ 1 s to load
        var (slowSeconds, slow, _) = Train(dir, data, model, "slow", delay);
        log.WriteLine(RenderLine(fast));
        log.WriteLine(RenderLine(slow));

        // 16 images, batch 4: 4 steps. The phases partition each step, so their sum over the epoch is the epoch's
        // training time up to the last batch (the clock the progress events use), less what follows the last event.
        Assert.Equal(4, fast.Steps);
        Assert.Equal(1, fast.Epoch);
        Assert.InRange(fast.StepMilliseconds * fast.Steps / 1000, fastSeconds * 0.95, fastSeconds * 1.05 + 0.05);
        Assert.InRange(slow.StepMilliseconds * slow.Steps / 1000, slowSeconds * 0.95, slowSeconds * 1.05 + 0.05);
        foreach (var phase in new[] { StepPhase.Forward, StepPhase.Loss, StepPhase.Backward, StepPhase.Optimizer })
            Assert.True(fast[phase] > 0, $"{phase} took no time");
        Assert.Equal(0, fast[StepPhase.AllReduce]);                      // one process: no all-reduce

        // The slowed loader: one worker loads the 16 samples one after another (16 × 250 ms), so the epoch lasts at least
        // that long; what of it the steps did not spend computing, they spent waiting for the loader.
        double slowCompute = slow.StepMilliseconds - slow[StepPhase.DataWait];
        Assert.True(slow[StepPhase.DataWait] >= 4 * delay - slowCompute - 50,
            $"data wait {slow[StepPhase.DataWait]:0.0} ms/step with {slowCompute:0.0} ms/step of compute; loading takes {4 * delay} ms/step");
        Assert.True(slow[StepPhase.DataWait] > fast[StepPhase.DataWait] + 100,
            $"data wait did not grow: {fast[StepPhase.DataWait]:0.0} → {slow[StepPhase.DataWait]:0.0} ms/step");

        // step_times.csv holds the same means; results.csv keeps Ultralytics' columns only.
        var row = StepTimesCsv.Read(Path.Combine(fastRun, StepTimesCsv.FileName)).Single();
        Assert.Equal(4, row["steps"]);
        Assert.Equal(fast[StepPhase.Forward], row["forward_ms"], 0.001);   // written to 3 decimals
        Assert.Equal(fast.StepMilliseconds, row["step_ms"], 0.001);
        Assert.Equal(ResultsCsv.Columns, File.ReadLines(Path.Combine(fastRun, "results.csv")).First().Split(','));
    }

    static string RenderLine(StepTimes t) => TrainingRenderer.StepTimesLine(t);
}
