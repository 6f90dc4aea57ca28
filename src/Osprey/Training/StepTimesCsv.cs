using System.Globalization;
using System.Text;

namespace Osprey.Training;

/// <summary>
/// step_times.csv beside results.csv (which keeps Ultralytics' columns): one row per epoch with the mean milliseconds
/// per training step of each <see cref="StepPhase"/>.
/// </summary>
public static class StepTimesCsv
{
    /// <summary>The file name in the run folder.</summary>
    public const string FileName = "step_times.csv";

    /// <summary>The header columns, in order: epoch, steps, synchronized, step_ms, then one per phase.</summary>
    public static readonly IReadOnlyList<string> Columns = new[] { "epoch", "steps", "synchronized", "step_ms" }
        .Concat(Enum.GetValues<StepPhase>().Select(ColumnOf)).ToArray();

    /// <summary>The column of <paramref name="phase"/> (<c>data_wait_ms</c>, <c>forward_ms</c>, …).</summary>
    public static string ColumnOf(StepPhase phase) => phase switch
    {
        StepPhase.DataWait => "data_wait_ms",
        StepPhase.AllReduce => "allreduce_ms",
        _ => phase.ToString().ToLowerInvariant() + "_ms",
    };

    /// <summary>Appends a row (and the header first when the file is new).</summary>
    public static void Append(string path, StepTimes times)
    {
        var sb = new StringBuilder();
        if (!File.Exists(path)) sb.AppendJoin(',', Columns).Append('\n');
        sb.Append(times.Epoch.ToString(CultureInfo.InvariantCulture)).Append(',')
          .Append(times.Steps.ToString(CultureInfo.InvariantCulture)).Append(',')
          .Append(times.Synchronized ? '1' : '0').Append(',')
          .AppendJoin(',', new[] { times.StepMilliseconds }.Concat(times.Milliseconds).Select(Format)).Append('\n');
        File.AppendAllText(path, sb.ToString());
    }

    /// <summary>Reads the rows back (tests, benchmarks).</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, double>> Read(string path) => ResultsCsv.Read(path);

    static string Format(double milliseconds) => milliseconds.ToString("0.###", CultureInfo.InvariantCulture);
}
