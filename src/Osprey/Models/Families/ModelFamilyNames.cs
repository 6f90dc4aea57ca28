using System.Text.RegularExpressions;
using Osprey.Models.Building;

namespace Osprey.Models.Families;

/// <summary>
/// Which family a model config belongs to, by the modules its YAML names (YOLOv10: SCDown, PSA, C2fCIB, v10Detect;
/// YOLO11: C3k2, C2PSA; else YOLOv8), and the other way round: the family and scale in an export's <c>description</c>
/// (Ultralytics writes <c>"Ultralytics YOLO11n model trained on coco.yaml"</c>) → the embedded YAML to rebuild it from.
/// </summary>
public static partial class ModelFamilyNames
{
    /// <summary>"YOLOv8".</summary>
    public const string YoloV8 = "YOLOv8";

    /// <summary>"YOLO11".</summary>
    public const string Yolo11 = "YOLO11";

    /// <summary>"YOLOv10".</summary>
    public const string YoloV10 = "YOLOv10";

    private static readonly string[] V10Modules = { "SCDown", "PSA", "C2fCIB", "v10Detect" };
    private static readonly string[] Yolo11Modules = { "C3k2", "C2PSA" };

    /// <summary>The family of <paramref name="config"/> as Ultralytics names it (<see cref="YoloV10"/>, <see cref="Yolo11"/>
    /// or <see cref="YoloV8"/>).</summary>
    public static string Of(ModelConfig config)
    {
        if (config.Layers.Any(row => V10Modules.Contains(row.Module))) return YoloV10;
        return config.Layers.Any(row => Yolo11Modules.Contains(row.Module)) ? Yolo11 : YoloV8;
    }

    /// <summary>
    /// The family and scale named in an export's description (<c>YOLO11n</c>, <c>YOLOv8s</c>, <c>YOLOv10b</c>), with the
    /// model YAML name they stand for (<c>yolo11n.yaml</c>, which <see cref="ModelConfig.Load"/> resolves); null when the
    /// text names none.
    /// </summary>
    public static (string Family, string Scale, string ConfigName)? FromDescription(string? description)
    {
        if (description is null) return null;
        var match = FamilyAndScale().Match(description);
        if (!match.Success) return null;
        string family = "YOLO" + match.Groups[1].Value, scale = match.Groups[2].Value;
        return (family, scale, family.ToLowerInvariant() + scale + ".yaml");
    }

    [GeneratedRegex(@"\bYOLO(v?\d+)([nslmxb])\b")]
    private static partial Regex FamilyAndScale();
}
