using System.Globalization;
using System.Text;
using Osprey.IO;

namespace Osprey.Training;

/// <summary>
/// A resumed run whose ranks (world size) or global batch differ from the checkpoint's (elastic training,
/// docs/distributed.md): where it happened, from what to what, and why.
/// </summary>
/// <param name="Epoch">The epoch it happened in (1-based, as results.csv).</param>
/// <param name="BatchInEpoch">Global batches of that epoch done before (at the resumed run's batch).</param>
/// <param name="Iteration">The global iteration the resumed run continues at (Ultralytics' <c>ni</c>).</param>
/// <param name="OldWorld">Ranks of the run that wrote the checkpoint.</param>
/// <param name="NewWorld">Ranks of the resumed run.</param>
/// <param name="OldBatch">Global batch of the run that wrote the checkpoint.</param>
/// <param name="NewBatch">Global batch of the resumed run.</param>
/// <param name="Reason">Why: the launcher's (a lost rank) or the resume's arguments.</param>
public sealed record WorldChange(int Epoch, int BatchInEpoch, long Iteration, int OldWorld, int NewWorld, int OldBatch, int NewBatch, string Reason)
{
    /// <summary>The launcher tells the ranks of a relaunch why the world changed (e.g. <c>rank 2 lost: …</c>).</summary>
    public const string ReasonVariable = "OSPREY_WORLD_CHANGE_REASON";

    /// <summary>The sidecar in the run folder with one row per change.</summary>
    public const string FileName = "world.csv";

    /// <summary>world.csv's columns.</summary>
    public static readonly IReadOnlyList<string> Columns =
        new[] { "time", "epoch", "batch_in_epoch", "iteration", "old_world", "new_world", "old_batch", "new_batch", "reason" };

    /// <summary>The change a resume from <paramref name="saved"/> makes at <paramref name="world"/> ranks and global
    /// <paramref name="batch"/>, or null when neither changed (or the checkpoint predates the record of its world).</summary>
    public static WorldChange? Between(TrainingState saved, int savedBatch, int world, int batch, int batchInEpoch, long iteration)
    {
        bool worldChanged = saved.World > 0 && saved.World != world;
        if (!worldChanged && savedBatch == batch) return null;
        string reason = Environment.GetEnvironmentVariable(ReasonVariable) is { Length: > 0 } given ? given
            : savedBatch != batch ? $"resumed with batch={batch}" : $"resumed on {world} rank(s)";
        return new WorldChange(saved.Epoch + 1, batchInEpoch, iteration, saved.World > 0 ? saved.World : world, world, savedBatch, batch, reason);
    }

    /// <summary>The one line the run logs about the change (<paramref name="rules"/>: what a new global batch changed).</summary>
    public string Describe(int batchesPerEpoch, string? rules) =>
        $"elastic resume at epoch {Epoch}, batch {BatchInEpoch}/{batchesPerEpoch}: {OldWorld} → {NewWorld} rank(s), " +
        (rules is null ? $"global batch {NewBatch} unchanged: the run continues as the uninterrupted one, to float rounding" : rules) +
        $" ({Reason})";

    /// <summary>Appends the change to <paramref name="runDirectory"/>/world.csv (written whole, atomically).</summary>
    public void Append(string runDirectory)
    {
        string path = Path.Combine(runDirectory, FileName);
        var text = new StringBuilder(File.Exists(path) ? File.ReadAllText(path) : string.Join(',', Columns) + "\n");
        var inv = CultureInfo.InvariantCulture;
        text.Append(string.Join(',', DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", inv), Epoch.ToString(inv),
            BatchInEpoch.ToString(inv), Iteration.ToString(inv), OldWorld.ToString(inv), NewWorld.ToString(inv),
            OldBatch.ToString(inv), NewBatch.ToString(inv), "\"" + Reason.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"")).Append('\n');
        AtomicFile.WriteAllText(path, text.ToString());
    }

    /// <summary>The rows of a world.csv (column → text; the reason unquoted).</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, string>> Read(string path) => File.ReadAllLines(path).Skip(1)
        .Where(line => line.Length > 0)
        .Select(line =>
        {
            int quote = line.IndexOf('"', StringComparison.Ordinal);
            string[] cells = line[..(quote - 1)].Split(',');
            string reason = line[(quote + 1)..^1].Replace("\"\"", "\"", StringComparison.Ordinal);
            return (IReadOnlyDictionary<string, string>)Columns.Zip(cells.Append(reason)).ToDictionary(p => p.First, p => p.Second);
        }).ToList();
}

/// <summary>How a resumed run continues when its world or global batch changed.</summary>
internal static class ElasticResume
{
    /// <summary>
    /// The state <paramref name="run"/> continues from after loading <paramref name="saved"/>: the world recorded; with
    /// another global batch the epoch's position converted (samples done → whole batches at the new size, rounded down:
    /// at most batch − 1 samples are seen again), a fresh accumulation, and the weight decay of the new batch
    /// (<paramref name="decays"/>: the groups' values the optimiser was created with, before the checkpoint's were loaded).
    /// The change, if any, is logged in one line and appended to world.csv (main rank).
    /// </summary>
    public static TrainingState Continue(TrainingRun run, TrainingState saved, IReadOnlyList<double> decays, Action<string> log)
    {
        int batch = (int)run.Args.Batch, world = run.Parallel.World;
        int savedBatch = saved.Batch > 0 ? saved.Batch : (int)Config.ArgsYaml.Deserialize(saved.Args).Batch;
        var state = saved with { World = world, Batch = batch };
        if (savedBatch != batch)
        {
            int batchInEpoch = (int)((long)saved.BatchInEpoch * savedBatch / batch);
            long iteration = (long)saved.Epoch * run.BatchesPerEpoch + batchInEpoch;
            state = state with { BatchInEpoch = batchInEpoch, Iteration = iteration, LastOptimizerIteration = iteration - 1 };
            var groups = run.Optimizer.Optimizer.Groups;
            for (int g = 0; g < groups.Count; g++) groups[g].WeightDecay = decays[g];
        }
        if (WorldChange.Between(saved, savedBatch, world, batch, state.BatchInEpoch, state.Iteration) is not { } change) return state;
        string? rules = savedBatch == batch ? null : Rules(run, savedBatch, saved.BatchInEpoch);
        log(change.Describe(run.BatchesPerEpoch, rules));
        if (run.IsMain) change.Append(run.Files.Directory);
        return state;
    }

    // Ultralytics' rules for another global batch: accumulation to nbs, weight decay × batch·accumulate/nbs.
    static string Rules(TrainingRun run, int savedBatch, int savedBatchInEpoch)
    {
        int nbs = run.Args.Nbs, batch = (int)run.Args.Batch;
        int before = LearningRateSchedule.AccumulateFor(nbs, savedBatch), after = run.Schedule.Accumulate;
        double decayBefore = run.Args.WeightDecay * savedBatch * before / nbs, decayAfter = run.Args.WeightDecay * batch * after / nbs;
        long samples = (long)savedBatchInEpoch * savedBatch;
        long again = samples - samples / batch * batch;
        var inv = CultureInfo.InvariantCulture;
        return $"global batch {savedBatch} → {batch} (Ultralytics' rules for nbs={nbs}: accumulate {before} → {after}, " +
            $"weight_decay {decayBefore.ToString("0.#######", inv)} → {decayAfter.ToString("0.#######", inv)}, " +
            $"{run.BatchesPerEpoch} batches an epoch; {samples} samples of the epoch were done, {again} are seen again)";
    }
}
