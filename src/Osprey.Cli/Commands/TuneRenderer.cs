using System.Globalization;
using Osprey.Tuning;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>Renders <see cref="TuneEvent"/>s: on a terminal a live table of the trials (state, epoch, fitness, best,
/// slot) under the latest event; otherwise one line per event. The table of every trial closes the tune either way.</summary>
public sealed class TuneRenderer(IAnsiConsole output)
{
    static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Consumes events until the tuner finishes.</summary>
    public void Render(IEnumerable<TuneEvent> events)
    {
        if (!output.Profile.Capabilities.Interactive)
        {
            foreach (var e in events) Line(e);
            return;
        }
        using var stream = events.GetEnumerator();
        if (!stream.MoveNext()) return;
        Line(stream.Current);                       // the start: where, what, how
        string latest = "";
        output.Live(new Table()).AutoClear(true).Start(context =>
        {
            while (stream.MoveNext() && stream.Current is not TuneFinished)
            {
                latest = Describe(stream.Current) ?? latest;
                context.UpdateTarget(new Rows(Table(stream.Current.Trials), new Text(latest)));
            }
        });
        if (stream.Current is TuneFinished finished) Line(finished);
    }

    void Line(TuneEvent e)
    {
        switch (e)
        {
            case TuneStarted s:
                output.WriteLine($"Tuner: {(s.Resumed ? "resuming" : "starting")} {s.Directory}");
                output.WriteLine($"Tuner: {s.Search.ToString().ToLowerInvariant()} search, {s.Iterations} trials of {s.Epochs} epochs, " +
                                 $"{s.Slots.Count} at once on {s.Launcher} ({string.Join(", ", s.Slots)})");
                if (s.Rungs.Count > 0) output.WriteLine($"Tuner: ASHA rungs at epochs {string.Join(", ", s.Rungs)} (reduction factor 3)");
                output.WriteLine($"Tuner: space {string.Join(", ", s.Space)}");
                if (s.Resumed) output.WriteLine($"Tuner: {s.Trials.Count(t => t.Status != TrialStatus.Running)} trial(s) ended, " +
                                                $"{s.Trials.Count(t => t.Status == TrialStatus.Running)} to continue");
                break;
            case TuneFinished f:
                output.Write(Table(f.Trials));
                output.WriteLine(Summary(f));
                output.WriteLine($"Results saved to {f.Directory}");
                break;
            default:
                if (Describe(e) is { } text) output.WriteLine(text);
                break;
        }
    }

    static string? Describe(TuneEvent e) => e switch
    {
        TrialStarted s => $"trial{s.Index} {(s.Resumed ? "resumed" : "started")} on {s.Slot}: " +
                          string.Join(' ', s.Hyperparameters.Select(p => string.Format(Invariant, "{0}={1:G5}", p.Key, p.Value).Replace("E-", "e-"))),
        TrialEpoch p => string.Format(Invariant, "trial{0} epoch {1} fitness {2:0.00000}{3}", p.Index, p.Epoch, p.Fitness,
            p.Stopped ? $": stopped ({p.Trials[p.Index].Note})" : ""),
        TrialEnded d => $"trial{d.Index} {d.Status.ToString().ToLowerInvariant()}" +
                        (d.Trials[d.Index].BestFitness is { } best ? string.Format(Invariant, ", best fitness {0:0.00000}", best) : "") +
                        (d.Status == TrialStatus.Failed ? $": {d.Trials[d.Index].Note}" : ""),
        _ => null,
    };

    static string Summary(TuneFinished f)
    {
        var counts = Enum.GetValues<TrialStatus>().Where(s => s != TrialStatus.Running)
            .Select(s => $"{f.Trials.Count(t => t.Status == s)} {s.ToString().ToLowerInvariant()}");
        string best = f.BestTrial is { } b ? string.Format(Invariant, "best trial{0}, fitness {1:0.00000}", b, f.BestFitness) : "no trial reported a fitness";
        return string.Format(Invariant, "Tuner: {0} trials ({1}), {2} trial-epochs, {3:0.0} s; {4}",
            f.Trials.Count, string.Join(", ", counts), f.TrialEpochs, f.Seconds, best);
    }

    static Table Table(IReadOnlyList<TrialView> trials)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumn("trial");
        foreach (string c in new[] { "state", "epoch", "fitness", "best", "slot" }) table.AddColumn(new TableColumn(c).RightAligned());
        foreach (var t in trials)
            table.AddRow(t.Name, t.Status.ToString().ToLowerInvariant(), t.Epoch.ToString(Invariant), Number(t.Fitness), Number(t.BestFitness),
                Markup.Escape(t.Slot ?? ""));
        return table;
    }

    static string Number(double? value) => value is { } v ? v.ToString("0.00000", Invariant) : "-";
}
