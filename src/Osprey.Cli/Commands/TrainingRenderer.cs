using System.Globalization;
using Osprey.Data;
using Osprey.Evaluation;
using Osprey.Training;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>Renders <see cref="TrainingEvent"/>s: a live bar per epoch on a terminal, one summary line per epoch always.</summary>
public sealed class TrainingRenderer(IAnsiConsole output)
{
    static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Consumes events until the trainer finishes.</summary>
    public void Render(IEnumerable<TrainingEvent> events)
    {
        using var stream = events.GetEnumerator();
        while (stream.MoveNext())
        {
            switch (stream.Current)
            {
                case TrainingMessage message: output.WriteLine(message.Text); break;
                case TrainingStarted started: Started(started); break;
                case EpochStarted epoch: Epoch(epoch, stream); break;
                case EpochFinished finished: EpochLine(finished); break;
                case TrainingFinished done: Finished(done); break;
            }
        }
    }

    void Started(TrainingStarted s)
    {
        output.MarkupLine($"[bold]Osprey train[/] {Markup.Escape(s.Model)} ({s.Parameters.ToString("N0", Invariant)} parameters) on {Markup.Escape(s.Device)}");
        Dataset("train", s.Train);
        Dataset("val", s.Val);
        output.WriteLine($"optimizer: {s.Optimizer}");
        output.WriteLine($"precision: {s.Precision}");
        output.WriteLine($"batch {s.Batch} × accumulate {s.Accumulate}, imgsz {s.ImageSize}, {s.Workers} workers");
        output.WriteLine(s.Resumed
            ? $"Resuming {s.RunDirectory} from epoch {s.StartEpoch + 1} of {s.Epochs}"
            : $"Logging results to {s.RunDirectory}; starting training for {s.Epochs} epochs");
        output.WriteLine(string.Format(Invariant, "{0,11}{1,11}{2,11}{3,11}{4}{5,11}{6,11}", "Epoch", "box_loss", "cls_loss", "dfl_loss",
            string.Concat(s.LossNames.Skip(3).Select(n => string.Format(Invariant, "{0,11}", n))), "Instances", "Size"));
    }

    void Dataset(string split, DatasetSummary d)
    {
        output.WriteLine($"{split}: {d.Images} images, {d.Backgrounds} backgrounds, {d.Boxes} boxes, {d.SkippedImages + d.CorruptImages} skipped" +
            (d.CorruptImages > 0 ? $" ({d.CorruptImages} corrupt)" : "") + (d.OrphanLabels > 0 ? $", {d.OrphanLabels} labels without image" : ""));
        foreach (string message in d.Messages.Take(10)) output.WriteLine($"  {split}: {message}");
        if (d.Messages.Count > 10) output.WriteLine($"  {split}: … {d.Messages.Count - 10} more");
    }

    // Live bar for the epoch's batches (terminal only); returns at the epoch's end.
    void Epoch(EpochStarted start, IEnumerator<TrainingEvent> stream)
    {
        string epochText = $"{start.Epoch + 1}/{start.Epochs}";
        if (!output.Profile.Capabilities.Interactive)
        {
            while (stream.Current is not EpochFinished && stream.MoveNext())
                if (stream.Current is EpochFinished finished) EpochLine(finished);
            return;
        }
        output.Progress().AutoClear(true).HideCompleted(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var train = ctx.AddTask(epochText, maxValue: start.Batches);
                ProgressTask? validate = null;
                while (stream.MoveNext())
                {
                    switch (stream.Current)
                    {
                        case BatchFinished b:
                            train.Description = string.Format(Invariant, "{0,11}{1,11:0.0000}{2,11:0.0000}{3,11:0.0000}{7}{4,11}{5,11}  {6:0.00} it/s",
                                epochText, b.MeanLosses[0], b.MeanLosses[1], b.MeanLosses[2], b.Instances, b.ImageSize, (b.Batch + 1) / Math.Max(b.Seconds, 1e-9),
                                ExtraLosses(b.MeanLosses));
                            train.Value = b.Batch + 1;
                            break;
                        case ValidationStarted v:
                            train.StopTask();
                            validate = ctx.AddTask($"{"",11}validating", maxValue: Math.Max(v.Batches, 1));
                            break;
                        case ValidationBatchFinished vb:
                            if (validate is not null) validate.Value = vb.Batch;
                            break;
                        case EpochFinished:
                            return;
                    }
                }
            });
        if (stream.Current is EpochFinished done) EpochLine(done);
    }

    // The loss terms' means after box, cls, dfl (distillation's dis_loss); empty for a plain run.
    static string ExtraLosses(IReadOnlyList<double> losses) =>
        string.Concat(losses.Skip(3).Select(v => string.Format(Invariant, "{0,11:0.0000}", v)));

    void EpochLine(EpochFinished f)
    {
        var r = f.Result;
        string metrics = f.Validation is null ? "" : string.Format(Invariant,
            "   P {0:0.000}  R {1:0.000}  mAP50 {2:0.000}  mAP50-95 {3:0.000}{4}", r.Precision, r.Recall, r.Map50, r.Map50To95, f.IsBest ? "  (best)" : "");
        output.WriteLine(string.Format(Invariant, "{0,11}{1,11:0.0000}{2,11:0.0000}{3,11:0.0000}{6}{4}   {5:0.0}s",
            r.Epoch, r.TrainLosses[0], r.TrainLosses[1], r.TrainLosses[2], metrics, r.Seconds, ExtraLosses(r.TrainLosses)));
        if (f.StepTimes is { Steps: > 0 } t) output.WriteLine(StepTimesLine(t));
    }

    /// <summary>One line: the mean step and its phases in milliseconds (all-reduce only under data parallel).</summary>
    public static string StepTimesLine(StepTimes t)
    {
        var parts = Enum.GetValues<StepPhase>()
            .Where(p => p != StepPhase.AllReduce || t[p] > 0)
            .Select(p => string.Format(Invariant, "{0} {1:0.0}", PhaseName(p), t[p]));
        return string.Format(Invariant, "{0,11}step {1:0.0} ms = {2} ({3} steps{4})", "", t.StepMilliseconds, string.Join(", ", parts),
            t.Steps, t.Synchronized ? ", device synchronised" : "");
    }

    static string PhaseName(StepPhase phase) => phase switch
    {
        StepPhase.DataWait => "data wait",
        StepPhase.AllReduce => "all-reduce",
        _ => phase.ToString().ToLowerInvariant(),
    };

    void Finished(TrainingFinished done)
    {
        output.WriteLine($"{done.EpochsRun} epochs completed in {done.Hours:0.000} hours ({done.StopReason}).");
        if (done.Final is { } final)
        {
            output.WriteLine($"Validating {done.BestWeights}:");
            output.Write(MetricsTable.Build(final, done.ClassNames));
        }
        output.WriteLine($"Results saved to {done.RunDirectory}");
    }
}

/// <summary>Ultralytics' validation table: all, then one row per class.</summary>
public static class MetricsTable
{
    /// <summary>The table of <paramref name="result"/>.</summary>
    public static Table Build(Osprey.Evaluation.ValidationResult result, IReadOnlyList<string> names)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumn("Class");
        foreach (string c in new[] { "Images", "Instances", "P", "R", "mAP50", "mAP50-95" }) table.AddColumn(new TableColumn(c).RightAligned());
        var m = result.Metrics;
        table.AddRow(Row("all", result.Images, result.Instances, m.Precision, m.Recall, m.MAP50, m.MAP50To95));
        foreach (var c in m.Classes)
            table.AddRow(Row(c.ClassId < names.Count ? names[c.ClassId] : c.ClassId.ToString(CultureInfo.InvariantCulture),
                c.Images, c.Instances, c.Precision, c.Recall, c.AP50, c.AP50To95));
        return table;
    }

    static string[] Row(string name, int images, int instances, double p, double r, double map50, double map) => new[]
    {
        Markup.Escape(name), images.ToString(CultureInfo.InvariantCulture), instances.ToString(CultureInfo.InvariantCulture),
        p.ToString("0.000", CultureInfo.InvariantCulture), r.ToString("0.000", CultureInfo.InvariantCulture),
        map50.ToString("0.000", CultureInfo.InvariantCulture), map.ToString("0.000", CultureInfo.InvariantCulture),
    };
}
