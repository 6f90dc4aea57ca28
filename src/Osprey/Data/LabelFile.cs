using System.Globalization;

namespace Osprey.Data;

/// <summary>Result of reading one YOLO label file.</summary>
/// <param name="Classes">Kept class ids.</param>
/// <param name="Boxes">Kept boxes, normalised centre-xywh (4 per box).</param>
/// <param name="DroppedRows">Rows skipped as invalid.</param>
/// <param name="DuplicateRows">Duplicate rows removed.</param>
/// <param name="Messages">One line per problem.</param>
public sealed record LabelFileContent(int[] Classes, float[] Boxes, int DroppedRows, int DuplicateRows, IReadOnlyList<string> Messages);

/// <summary>Parses YOLO detection label files (<c>class cx cy w h</c>, normalised) without ever changing them.</summary>
public static class LabelFile
{
    /// <summary>Coordinates up to this much above 1 are clipped to 1; more is an invalid row.</summary>
    public const float Tolerance = 0.01f;

    /// <summary>Parses label text. Rows with a wrong column count, unparsable numbers, negative or &gt; 1.01 coordinates,
    /// zero size or a class outside [0, classCount) are skipped; duplicate rows are dropped.</summary>
    public static LabelFileContent Parse(string text, int classCount, string labelPath)
    {
        var classes = new List<int>();
        var boxes = new List<float>();
        var seen = new HashSet<(int, float, float, float, float)>();
        var messages = new List<string>();
        int dropped = 0, duplicates = 0, lineNo = 0;
        foreach (var rawLine in text.Split('\n'))
        {
            lineNo++;
            var line = rawLine.Trim();
            if (line.Length == 0) continue;
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            string? problem = null;
            var values = new float[4];
            int cls = -1;
            if (parts.Length != 5)
            {
                problem = $"has {parts.Length} columns, expected 5";
            }
            else if (!float.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var clsValue)
                     || clsValue != MathF.Floor(clsValue) || clsValue < 0 || clsValue > int.MaxValue)
            {
                problem = $"class '{parts[0]}' is not a non-negative integer";
            }
            else
            {
                cls = (int)clsValue;
                for (var i = 0; i < 4 && problem is null; i++)
                {
                    if (!float.TryParse(parts[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v))
                        problem = $"value '{parts[i + 1]}' is not a number";
                    else if (v < 0f)
                        problem = $"coordinate {v.ToString(CultureInfo.InvariantCulture)} is negative";
                    else if (v > 1f + Tolerance)
                        problem = $"coordinate {v.ToString(CultureInfo.InvariantCulture)} is outside [0, 1] (not normalised?)";
                    else
                        values[i] = MathF.Min(v, 1f);
                }
                if (problem is null && cls >= classCount) problem = $"class {cls} >= nc {classCount}";
                if (problem is null && (values[2] <= 0f || values[3] <= 0f)) problem = "box has zero width or height";
            }
            if (problem is not null)
            {
                dropped++;
                messages.Add($"{labelPath}: line {lineNo} skipped: {problem}");
                continue;
            }
            if (!seen.Add((cls, values[0], values[1], values[2], values[3])))
            {
                duplicates++;
                continue;
            }
            classes.Add(cls);
            boxes.AddRange(values);
        }
        if (duplicates > 0) messages.Add($"{labelPath}: {duplicates} duplicate row(s) removed");
        return new LabelFileContent(classes.ToArray(), boxes.ToArray(), dropped, duplicates, messages);
    }
}
