using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Osprey.IO;

namespace Osprey.Evaluation;

/// <summary>
/// One detection in COCO results format: <c>image_id</c> (the file stem, an integer when numeric),
/// <c>category_id</c> (the class index), <c>bbox</c> = [x, y, w, h] in original image pixels, <c>score</c>.
/// </summary>
public sealed record CocoPrediction(string ImageStem, int CategoryId, double X, double Y, double Width, double Height, double Score)
{
    /// <summary>From an xyxy detection in original pixels, rounded as Ultralytics writes them (bbox 3, score 5 decimals).</summary>
    public static CocoPrediction FromXyxy(string imagePath, Detection d) => new(
        Path.GetFileNameWithoutExtension(imagePath), d.Class,
        Math.Round(d.X1, 3), Math.Round(d.Y1, 3), Math.Round(d.X2 - d.X1, 3), Math.Round(d.Y2 - d.Y1, 3), Math.Round(d.Score, 5));

    /// <summary>The image id: the stem as an integer when it is one (000000000139 → 139), else the stem.</summary>
    public JsonNode ImageId() =>
        long.TryParse(ImageStem, NumberStyles.None, CultureInfo.InvariantCulture, out long id) ? JsonValue.Create(id) : JsonValue.Create(ImageStem);

    /// <summary>Writes predictions.json (atomically).</summary>
    public static void WriteJson(string path, IEnumerable<CocoPrediction> predictions)
    {
        var array = new JsonArray();
        foreach (var p in predictions)
            array.Add(new JsonObject
            {
                ["image_id"] = p.ImageId(),
                ["category_id"] = p.CategoryId,
                ["bbox"] = new JsonArray(p.X, p.Y, p.Width, p.Height),
                ["score"] = p.Score,
            });
        AtomicFile.WriteAllText(path, array.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
    }
}
