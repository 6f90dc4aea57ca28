using System.Text.Json;
using Osprey.Inference;
using Osprey.Tests.Data;

namespace Osprey.Tests.Inference;

/// <summary>The shared int8 YOLOv8n ONNX file and ONNX Runtime's reference detections beside it.</summary>
internal static class ReferenceDetections
{
    public static string OnnxPath => Path.Combine(DataTestFiles.SharedData, "models", "yolov8n_int8.onnx");
    public static string JsonPath => Path.Combine(DataTestFiles.SharedData, "models", "yolov8n_int8.detections.json");

    public sealed record Expected(string Image, int Width, int Height, IReadOnlyList<(int Cls, float Conf, float[] Xyxy)> Detections);

    public static IReadOnlyList<Expected> Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(JsonPath));
        var list = new List<Expected>();
        foreach (var image in doc.RootElement.GetProperty("images").EnumerateObject())
        {
            var dets = image.Value.GetProperty("detections").EnumerateArray().Select(d => (
                d.GetProperty("class_id").GetInt32(), d.GetProperty("conf").GetSingle(),
                d.GetProperty("xyxy").EnumerateArray().Select(v => v.GetSingle()).ToArray())).ToList();
            list.Add(new Expected(Path.Combine(DataTestFiles.SharedData, image.Name), image.Value.GetProperty("width").GetInt32(),
                image.Value.GetProperty("height").GetInt32(), dets));
        }
        return list;
    }

    /// <summary>Greedy one-to-one match (same class, box within tolerance, confidence within tolerance); returns problems.</summary>
    public static List<string> Compare(Expected expected, Prediction actual, float confTolerance, float boxTolerance,
        List<(float Conf, float Box)>? errors = null)
    {
        var problems = new List<string>();
        if (actual.Width != expected.Width || actual.Height != expected.Height)
            problems.Add($"{expected.Image}: size {actual.Width}x{actual.Height} vs {expected.Width}x{expected.Height}");
        if (actual.Detections.Count != expected.Detections.Count)
            problems.Add($"{expected.Image}: {actual.Detections.Count} detections vs {expected.Detections.Count}");
        var used = new bool[actual.Detections.Count];
        foreach (var (cls, conf, xyxy) in expected.Detections)
        {
            int best = -1;
            float bestError = float.MaxValue;
            for (int i = 0; i < actual.Detections.Count; i++)
            {
                var d = actual.Detections[i];
                if (used[i] || d.ClassId != cls) continue;
                float error = new[] { d.Box.X1 - xyxy[0], d.Box.Y1 - xyxy[1], d.Box.X2 - xyxy[2], d.Box.Y2 - xyxy[3] }.Max(MathF.Abs);
                if (error < bestError) { bestError = error; best = i; }
            }
            if (best < 0) { problems.Add($"{expected.Image}: no class {cls} conf {conf} at [{string.Join(", ", xyxy)}]"); continue; }
            used[best] = true;
            float confError = MathF.Abs(actual.Detections[best].Confidence - conf);
            errors?.Add((confError, bestError));
            if (bestError > boxTolerance || confError > confTolerance)
                problems.Add($"{expected.Image}: class {cls} conf {actual.Detections[best].Confidence:0.000} vs {conf}, box error {bestError:0.0} px");
        }
        return problems;
    }
}
