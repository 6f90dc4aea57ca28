using System.Globalization;
using System.Text;
using Osprey.Evaluation;

namespace Osprey.Tuning;

/// <summary>
/// How a trial reports to the tuner: the tuner reads the trial's results.csv as it grows (each epoch appends a row after
/// its checkpoint is saved), complete lines only, and turns each row into (epoch, fitness) with Ultralytics' fitness
/// 0.1·mAP50 + 0.9·mAP50-95 of the row's metrics. Works wherever the tuner can read the trial's run folder (a shared file
/// system under Slurm or mpirun); needs nothing from the trial but <c>osprey train</c>'s own results.csv.
/// </summary>
public sealed class ResultsTail(string path)
{
    long _offset;
    string[]? _header;

    /// <summary>The results.csv read.</summary>
    public string Path { get; } = path;

    /// <summary>The rows appended since the last call, as (epoch, fitness).</summary>
    public IReadOnlyList<(int Epoch, double Fitness)> ReadNew()
    {
        if (!File.Exists(Path)) return Array.Empty<(int, double)>();
        byte[] bytes;
        using (var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            if (stream.Length < _offset) (_offset, _header) = (0, null); // the file was started over
            stream.Seek(_offset, SeekOrigin.Begin);
            bytes = new byte[stream.Length - _offset];
            stream.ReadExactly(bytes);
        }
        int end = Array.LastIndexOf(bytes, (byte)'\n');
        if (end < 0) return Array.Empty<(int, double)>();                // no complete line yet
        _offset += end + 1;
        var rows = new List<(int, double)>();
        foreach (string line in Encoding.UTF8.GetString(bytes, 0, end).Split('\n'))
        {
            if (line.Length == 0) continue;
            string[] cells = line.Split(',');
            if (_header is null)
            {
                _header = cells;
                continue;
            }
            rows.Add(Row(cells));
        }
        return rows;
    }

    (int, double) Row(string[] cells)
    {
        double Cell(string column)
        {
            int i = Array.IndexOf(_header!, column);
            if (i < 0 || i >= cells.Length) throw new InvalidDataException($"{Path}: no column '{column}'");
            string text = cells[i].Trim();
            return text switch
            {
                "nan" => double.NaN,
                "inf" => double.PositiveInfinity,
                "-inf" => double.NegativeInfinity,
                _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
            };
        }
        return ((int)Cell("epoch"), DetectionMetrics.FitnessOf(Cell("metrics/mAP50(B)"), Cell("metrics/mAP50-95(B)")));
    }
}
