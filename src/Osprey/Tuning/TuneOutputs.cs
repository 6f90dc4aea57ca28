using System.Globalization;
using System.Text;
using Osprey.IO;
using Osprey.Plotting;
using Osprey.Training;

namespace Osprey.Tuning;

/// <summary>
/// What a tune leaves in its folder, as Ultralytics' genetic tuner does: <c>tune_results.csv</c> (fitness rounded to 5
/// places, then the space's keys; one row per ended trial, by trial index; a failed trial at fitness 0),
/// <c>best_hyperparameters.yaml</c> (a comment header, then the best trial's values), the best trial's weights in
/// <c>weights/</c>, and at the end <c>tune_fitness.png</c> and <c>tune_scatter_plots.png</c>. Numbers are written as
/// Python writes floats (<c>0.01</c>, <c>1e-05</c>, <c>1.0</c>).
/// </summary>
internal sealed class TuneOutputs(string directory)
{
    string? _copiedFrom;

    /// <summary>tune_results.csv.</summary>
    public const string ResultsFile = "tune_results.csv";

    /// <summary>The best ended trial by fitness (the earliest of equals), or null when none has reported one.</summary>
    public static TrialRecord? Best(TunerState state) => state.Trials
        .Where(t => t.Ended && t.Status != TrialStatus.Failed && t.BestFitness is not null)
        .OrderByDescending(t => t.BestFitness).ThenBy(t => t.Index).FirstOrDefault();

    /// <summary>Rewrites the results and the best trial's files; <paramref name="final"/> also draws the plots.</summary>
    public void Write(TuneSession session, double seconds, bool final)
    {
        var state = session.State;
        var ended = state.Trials.Where(t => t.Ended).ToList();
        AtomicFile.WriteAllText(Path.Combine(directory, ResultsFile), Csv(state, ended));
        if (Best(state) is { } best)
        {
            AtomicFile.WriteAllText(Path.Combine(directory, "best_hyperparameters.yaml"), BestYaml(state, best, ended.Count, seconds));
            CopyWeights(best);
        }
        if (final && state.Trials.Any(t => t.Epochs > 0)) Plot(state, ended);
    }

    static string Csv(TunerState state, IReadOnlyList<TrialRecord> ended)
    {
        var csv = new StringBuilder().AppendJoin(',', state.Space.Select(d => d.Key).Prepend("fitness")).Append('\n');
        foreach (var trial in ended)
            csv.Append(Python(Math.Round(Fitness(trial), 5))).Append(',')
                .AppendJoin(',', state.Space.Select(d => Value(trial.Hyperparameters[d.Key], d.Integer))).Append('\n');
        return csv.ToString();
    }

    // Ultralytics' header (its emoji left out), then the values.
    string BestYaml(TunerState state, TrialRecord best, int ended, double seconds)
    {
        var yaml = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"# {ended}/{state.Iterations} iterations complete ({seconds:0.00}s)\n")
            .Append(CultureInfo.InvariantCulture, $"# Results saved to {directory}\n")
            .Append(CultureInfo.InvariantCulture, $"# Best fitness={Python(Math.Round(Fitness(best), 5))} observed at iteration {best.Index + 1}\n")
            .Append(CultureInfo.InvariantCulture, $"# Best fitness metrics are {Metrics(best)}\n")
            .Append(CultureInfo.InvariantCulture, $"# Best fitness model is {best.RunDirectory}\n")
            .Append("# Best fitness hyperparameters are printed below.\n\n");
        foreach (var d in state.Space) yaml.Append(d.Key).Append(": ").Append(Value(best.Hyperparameters[d.Key], d.Integer)).Append('\n');
        return yaml.ToString();
    }

    // The best epoch's row of the trial's results.csv, as Ultralytics prints its metrics dict.
    static string Metrics(TrialRecord trial)
    {
        string path = Path.Combine(trial.RunDirectory, "results.csv");
        if (!File.Exists(path)) return "{}";
        static double Fitness(IReadOnlyDictionary<string, double> row) => Evaluation.DetectionMetrics.FitnessOf(
            row.GetValueOrDefault("metrics/mAP50(B)"), row.GetValueOrDefault("metrics/mAP50-95(B)"));
        var rows = ResultsCsv.Read(path);
        if (rows.Count == 0) return "{}";
        var row = rows.MaxBy(Fitness)!;
        var items = new[] { "metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)" }.Where(row.ContainsKey)
            .Select(k => $"'{k}': {Python(Math.Round(row[k], 5))}").Append($"'fitness': {Python(Math.Round(Fitness(row), 5))}");
        return "{" + string.Join(", ", items) + "}";
    }

    void CopyWeights(TrialRecord best)
    {
        if (_copiedFrom == best.RunDirectory) return;
        string weights = Path.Combine(directory, "weights");
        foreach (string file in new[] { "best.safetensors", "last.safetensors", "best.yaml" })
        {
            string source = Path.Combine(best.RunDirectory, "weights", file);
            if (File.Exists(source)) AtomicFile.Write(Path.Combine(weights, file), stream => { using var from = File.OpenRead(source); from.CopyTo(stream); });
        }
        _copiedFrom = best.RunDirectory;
    }

    void Plot(TunerState state, IReadOnlyList<TrialRecord> ended)
    {
        TunePlots.Fitness(state.Trials.Select(t => (IReadOnlyList<double>)t.Fitness).ToArray(),
            state.Trials.Select(t => t.Status == TrialStatus.Stopped).ToArray(), ended.Select(Fitness).ToArray(),
            Path.Combine(directory, "tune_fitness.png"));
        TunePlots.Scatter(state.Space.Select(d => d.Key).ToArray(),
            ended.Select(t => state.Space.Select(d => t.Hyperparameters[d.Key]).ToArray()).ToArray(), ended.Select(Fitness).ToArray(),
            Path.Combine(directory, "tune_scatter_plots.png"));
    }

    /// <summary>A trial's fitness in the results: its best epoch's; 0 for a failed trial (Ultralytics records a failed
    /// iteration at 0).</summary>
    public static double Fitness(TrialRecord trial) =>
        trial.Status != TrialStatus.Failed && trial.BestFitness is { } best && double.IsFinite(best) ? best : 0;

    static string Value(double value, bool integer) =>
        integer ? ((long)value).ToString(CultureInfo.InvariantCulture) : Python(value);

    /// <summary>Python's <c>repr</c> of a float: the shortest text that reads back, <c>1.0</c> for whole numbers,
    /// <c>1e-05</c> for exponents.</summary>
    public static string Python(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsInfinity(value)) return value > 0 ? "inf" : "-inf";
        string text = value.ToString("R", CultureInfo.InvariantCulture);
        int e = text.IndexOf('E');
        if (e < 0) return text.Contains('.') ? text : text + ".0";
        int exponent = int.Parse(text[(e + 1)..], CultureInfo.InvariantCulture);
        return $"{text[..e]}e{(exponent < 0 ? '-' : '+')}{Math.Abs(exponent):00}";
    }
}
