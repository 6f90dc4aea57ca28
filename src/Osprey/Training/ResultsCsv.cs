using System.Globalization;
using System.Text;

namespace Osprey.Training;

/// <summary>One epoch's row of results.csv.</summary>
/// <param name="Epoch">1-based epoch, as Ultralytics writes it.</param>
/// <param name="Seconds">Wall time since the run started.</param>
/// <param name="TrainLosses">Mean box, cls, dfl loss over the epoch.</param>
/// <param name="Precision">metrics/precision(B).</param>
/// <param name="Recall">metrics/recall(B).</param>
/// <param name="Map50">metrics/mAP50(B).</param>
/// <param name="Map50To95">metrics/mAP50-95(B).</param>
/// <param name="ValLosses">box, cls, dfl loss on the validation set.</param>
/// <param name="LearningRates">lr of pg0, pg1, pg2 at the end of the epoch.</param>
public sealed record EpochResult(int Epoch, double Seconds, IReadOnlyList<double> TrainLosses, double Precision, double Recall,
    double Map50, double Map50To95, IReadOnlyList<double> ValLosses, IReadOnlyList<double> LearningRates)
{
    /// <summary>The names of <see cref="TrainLosses"/> and <see cref="ValLosses"/> (box_loss, cls_loss, dfl_loss, then a loss
    /// term's, e.g. dis_loss).</summary>
    public IReadOnlyList<string> LossNames { get; init; } = ResultsCsv.DetectionLosses;
}

/// <summary>results.csv with Ultralytics' columns and number format (<c>%.6g</c>).</summary>
public static class ResultsCsv
{
    /// <summary>The header columns, in order.</summary>
    public static readonly IReadOnlyList<string> Columns = new[]
    {
        "epoch", "time", "train/box_loss", "train/cls_loss", "train/dfl_loss", "metrics/precision(B)", "metrics/recall(B)",
        "metrics/mAP50(B)", "metrics/mAP50-95(B)", "val/box_loss", "val/cls_loss", "val/dfl_loss", "lr/pg0", "lr/pg1", "lr/pg2",
    };

    /// <summary>The detection loss items.</summary>
    public static readonly IReadOnlyList<string> DetectionLosses = new[] { "box_loss", "cls_loss", "dfl_loss" };

    /// <summary>The header columns of a run whose loss items are <paramref name="lossNames"/> (<see cref="Columns"/> for the
    /// detection loss alone; Ultralytics' order: each loss after dfl_loss, in train/ and in val/).</summary>
    public static IReadOnlyList<string> ColumnsFor(IReadOnlyList<string> lossNames) => lossNames.SequenceEqual(DetectionLosses)
        ? Columns
        : new[] { "epoch", "time" }.Concat(lossNames.Select(n => $"train/{n}"))
            .Concat(new[] { "metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)" })
            .Concat(lossNames.Select(n => $"val/{n}")).Concat(new[] { "lr/pg0", "lr/pg1", "lr/pg2" }).ToArray();

    /// <summary>Appends a row (and the header first when the file is new).</summary>
    public static void Append(string path, EpochResult row)
    {
        var sb = new StringBuilder();
        if (!File.Exists(path)) sb.AppendJoin(',', ColumnsFor(row.LossNames)).Append('\n');
        var values = new List<double> { row.Epoch, row.Seconds };
        values.AddRange(row.TrainLosses);
        values.AddRange(new[] { row.Precision, row.Recall, row.Map50, row.Map50To95 });
        values.AddRange(row.ValLosses);
        values.AddRange(row.LearningRates);
        sb.AppendJoin(',', values.Select(FormatG6)).Append('\n');
        File.AppendAllText(path, sb.ToString());
    }

    /// <summary>Reads the rows back (for plots, resume and tests).</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, double>> Read(string path)
    {
        string[] lines = File.ReadAllLines(path);
        string[] header = lines[0].Split(',');
        return lines.Skip(1).Where(l => l.Length > 0)
            .Select(l => (IReadOnlyDictionary<string, double>)header.Zip(l.Split(','))
                .ToDictionary(p => p.First, p => double.Parse(p.Second, CultureInfo.InvariantCulture)))
            .ToList();
    }

    /// <summary>C's <c>%.6g</c>: 6 significant digits, no trailing zeros, exponent form outside [1e-4, 1e6).</summary>
    public static string FormatG6(double value)
    {
        if (value == 0) return "0";
        if (double.IsNaN(value)) return "nan";
        if (double.IsInfinity(value)) return value > 0 ? "inf" : "-inf";
        // "E5" rounds to 6 significant digits (carrying 999999.5 into 1.00000E+006) and names the exponent
        string scientific = value.ToString("E5", CultureInfo.InvariantCulture);
        double rounded = double.Parse(scientific, CultureInfo.InvariantCulture);
        int exponent = int.Parse(scientific[(scientific.IndexOf('E') + 1)..], CultureInfo.InvariantCulture);
        if (exponent < -4 || exponent >= 6)
        {
            string mantissa = (rounded / Math.Pow(10, exponent)).ToString("0.#####", CultureInfo.InvariantCulture);
            return $"{mantissa}e{(exponent < 0 ? '-' : '+')}{Math.Abs(exponent):00}";
        }
        return rounded.ToString("0." + new string('#', Math.Max(0, 5 - exponent)), CultureInfo.InvariantCulture);
    }
}
