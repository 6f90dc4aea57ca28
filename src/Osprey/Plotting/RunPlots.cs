using Osprey.Data;
using Osprey.Evaluation;
using Osprey.Training;
using static TorchSharp.torch;

namespace Osprey.Plotting;

/// <summary>
/// The plots a training run writes, as Ultralytics draws them (results.png, PR_curve.png, confusion_matrix*.png,
/// train_batch*.png, val_batch*_labels.png, val_batch*_pred.png), drawn with OpenCV and written atomically as PNG.
/// </summary>
public static class RunPlots
{
    /// <summary>results.png: 2 × 5 charts of results.csv (train box/cls/dfl loss, precision, recall; val box/cls/dfl
    /// loss, mAP50, mAP50-95) against epoch, raw with markers and gaussian-smoothed (σ 3) dotted; 1600 × 800 px.</summary>
    public static void Results(string resultsCsv, string pngPath) => ResultsPlot.Draw(ResultsCsv.Read(resultsCsv), pngPath);

    /// <summary>results.png from rows keyed by results.csv's columns (missing columns leave their chart empty).</summary>
    public static void Results(IReadOnlyList<IReadOnlyDictionary<string, double>> rows, string pngPath) => ResultsPlot.Draw(rows, pngPath);

    /// <summary>PR_curve.png at IoU <paramref name="iou"/> from an evaluator's images
    /// (<see cref="PrecisionRecall.PrecisionRecallCurves"/>), labelled with COCOeval's AP; 1200 × 800 px.</summary>
    public static void PrecisionRecallCurve(CocoEvaluator evaluator, IReadOnlyList<string> names, string pngPath, double iou = 0.5) =>
        PrecisionRecallCurve(evaluator.PrecisionRecallCurves(iou), names, pngPath, iou);

    /// <summary>PR_curve.png from precomputed curves (all sampled at the same recall points); 1200 × 800 px.</summary>
    public static void PrecisionRecallCurve(IReadOnlyList<Evaluation.PrecisionRecallCurve> curves, IReadOnlyList<string> names,
        string pngPath, double iou = 0.5) =>
        PrecisionRecallPlot.Draw(curves, names, pngPath, iou.ToString("0.0#", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>confusion_matrix_normalized.png (<paramref name="normalize"/>: columns sum to 1) or confusion_matrix.png:
    /// heatmap with x True, y Predicted, names + "background"; 1200 × 900 px.</summary>
    public static void ConfusionMatrix(Evaluation.ConfusionMatrix matrix, IReadOnlyList<string> names, string pngPath, bool normalize = true) =>
        ConfusionMatrixPlot.Draw(matrix, names, pngPath, normalize);

    /// <summary>train_batch*.png / val_batch*_labels.png (<paramref name="predictions"/> null: the batch's labels) or
    /// val_batch*_pred.png (per image (n, 6) [x1, y1, x2, y2, conf, cls] in batch pixels, conf &gt; 0.25 drawn).
    /// Size: ⌈√b⌉ tiles per side (b ≤ 16 images) of the batch image size, scaled so a side is at most 1920 px.</summary>
    public static void Batch(Batch batch, IReadOnlyList<string> names, string pngPath, IReadOnlyList<Tensor>? predictions = null) =>
        BatchPlot.Draw(batch, names, pngPath, predictions);
}
