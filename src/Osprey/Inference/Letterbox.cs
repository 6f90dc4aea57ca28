using OpenCvSharp;
using static TorchSharp.torch;
using Size = OpenCvSharp.Size;

namespace Osprey.Inference;

/// <summary>How an image was letterboxed: gain r and the left/top padding, plus both sizes.</summary>
public readonly record struct LetterboxInfo(double Gain, int PadX, int PadY, int Width, int Height, int InputWidth, int InputHeight);

/// <summary>
/// Ultralytics' <c>LetterBox</c> (auto=False, scaleup=True, centre): r = min(H/h, W/w); resize (INTER_LINEAR) to
/// round(w·r) × round(h·r); pad with 114; left/top = round(d/2 − 0.1), right/bottom = round(d/2 + 0.1) (Python's
/// round, half to even).
/// </summary>
public static class Letterbox
{
    /// <summary>Padding grey.</summary>
    public const byte PadValue = 114;

    /// <summary>Letterboxes a BGR image into a new <paramref name="inputWidth"/> × <paramref name="inputHeight"/> BGR image.</summary>
    public static Mat Apply(Mat bgr, int inputHeight, int inputWidth, out LetterboxInfo info)
    {
        int h = bgr.Rows, w = bgr.Cols;
        double r = Math.Min((double)inputHeight / h, (double)inputWidth / w);
        int newW = (int)Math.Round(w * r, MidpointRounding.ToEven), newH = (int)Math.Round(h * r, MidpointRounding.ToEven);
        double dw = (inputWidth - newW) / 2.0, dh = (inputHeight - newH) / 2.0;
        int left = (int)Math.Round(dw - 0.1, MidpointRounding.ToEven), right = (int)Math.Round(dw + 0.1, MidpointRounding.ToEven);
        int top = (int)Math.Round(dh - 0.1, MidpointRounding.ToEven), bottom = (int)Math.Round(dh + 0.1, MidpointRounding.ToEven);
        using var resized = newW == w && newH == h ? bgr.Clone() : bgr.Resize(new Size(newW, newH), 0, 0, InterpolationFlags.Linear);
        var output = new Mat();
        Cv2.CopyMakeBorder(resized, output, top, bottom, left, right, BorderTypes.Constant, new Scalar(PadValue, PadValue, PadValue));
        if (output.Rows != inputHeight || output.Cols != inputWidth)
        {
            // round() of both halves can leave one pixel over or short: crop/pad to the exact size.
            using var fixedSize = new Mat(inputHeight, inputWidth, MatType.CV_8UC3, new Scalar(PadValue, PadValue, PadValue));
            var roi = new Rect(0, 0, Math.Min(inputWidth, output.Cols), Math.Min(inputHeight, output.Rows));
            using (var src = new Mat(output, roi)) using (var dst = new Mat(fixedSize, roi)) src.CopyTo(dst);
            output.Dispose();
            output = fixedSize.Clone();
        }
        info = new LetterboxInfo(r, left, top, w, h, inputWidth, inputHeight);
        return output;
    }

    /// <summary>BGR uint8 images (all the same size) → (b, 3, H, W) float32 RGB in [0, 1] (see <see cref="ToPixels"/>).</summary>
    public static Tensor ToTensor(IReadOnlyList<Mat> bgrImages)
    {
        var pixels = ToPixels(bgrImages);
        return tensor(pixels, new long[] { bgrImages.Count, 3, bgrImages[0].Rows, bgrImages[0].Cols });
    }

    /// <summary>
    /// BGR uint8 images (all the same size) → row-major (b, 3, H, W) float32 RGB, each value byte / 255f: the values of
    /// torch's <c>uint8 → float32, / 255</c> (an IEEE single division), looked up in a table of the 256 quotients and
    /// written in one pass instead of torch's flip, permute, cast and divide.
    /// </summary>
    public static float[] ToPixels(IReadOnlyList<Mat> bgrImages)
    {
        int h = bgrImages[0].Rows, w = bgrImages[0].Cols, plane = h * w;
        var pixels = new float[(long)bgrImages.Count * 3 * plane];
        for (int i = 0; i < bgrImages.Count; i++)
        {
            var image = bgrImages[i];
            if (image.Rows != h || image.Cols != w || image.Type() != MatType.CV_8UC3)
                throw new ArgumentException("every image of a batch must be CV_8UC3 of the same size");
            WritePlanes(image, pixels.AsSpan(i * 3 * plane, 3 * plane), h, w);
        }
        return pixels;
    }

    // byte / 255f for every byte.
    private static readonly float[] Quotients = Enumerable.Range(0, 256).Select(b => b / 255f).ToArray();

    // One image's R, G and B planes (any row step).
    private static unsafe void WritePlanes(Mat image, Span<float> planes, int h, int w)
    {
        int plane = h * w;
        fixed (float* output = planes, quotient = Quotients)
            for (int y = 0; y < h; y++)
            {
                byte* row = (byte*)image.Ptr(y);
                float* r = output + y * w, g = r + plane, b = g + plane;
                for (int x = 0; x < w; x++, row += 3)
                {
                    b[x] = quotient[row[0]];
                    g[x] = quotient[row[1]];
                    r[x] = quotient[row[2]];
                }
            }
    }

    /// <summary>
    /// Letterboxes each image (any 1-, 3- or 4-channel 8-bit image, converted to BGR first) to size × size; the caller
    /// disposes the returned images.
    /// </summary>
    public static List<Mat> ApplyAll(IReadOnlyList<Mat> images, int size, LetterboxInfo[] infos)
    {
        var boxed = new List<Mat>(images.Count);
        try
        {
            for (int i = 0; i < images.Count; i++)
            {
                var image = ToBgr(images[i]);
                boxed.Add(Apply(image, size, size, out infos[i]));
                if (!ReferenceEquals(image, images[i])) image.Dispose();
            }
            return boxed;
        }
        catch
        {
            foreach (var mat in boxed) mat.Dispose();
            throw;
        }
    }

    static Mat ToBgr(Mat image)
    {
        if (image.Type() == MatType.CV_8UC3) return image;
        var converted = new Mat();
        if (image.Channels() == 1) Cv2.CvtColor(image, converted, ColorConversionCodes.GRAY2BGR);
        else if (image.Channels() == 4) Cv2.CvtColor(image, converted, ColorConversionCodes.BGRA2BGR);
        else throw new ArgumentException($"unsupported image type {image.Type()}");
        if (converted.Depth() != MatType.CV_8U) converted.ConvertTo(converted, MatType.CV_8UC3);
        return converted;
    }

}
