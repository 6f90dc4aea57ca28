using OpenCvSharp;
using Osprey.Inference;
using Xunit;
using static TorchSharp.torch;

namespace Osprey.Tests.Inference;

public class LetterboxPixelsTests
{
    // Every byte value in every channel, in a Mat that is a view with a row step wider than its width: the pixels equal
    // torch's own uint8 → float32 / 255 of the RGB planes, bit for bit, at the (b, c, y, x) place.
    [Fact]
    public void ToPixels_is_torch_rgb_planes_over_255_bit_for_bit()
    {
        const int h = 16, w = 16;
        using var wide = new Mat(h, w + 5, MatType.CV_8UC3, new Scalar(1, 2, 3));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int v = y * w + x;   // 0 … 255
                wide.Set(y, x, new Vec3b((byte)v, (byte)(255 - v), (byte)((v * 7) % 256)));
            }
        using var view = new Mat(wide, new Rect(0, 0, w, h));
        using var second = new Mat(h, w, MatType.CV_8UC3, new Scalar(10, 20, 30));
        var pixels = Letterbox.ToPixels(new[] { view, second });

        using var scope = NewDisposeScope();
        var bytes = new byte[2 * h * w * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var a = view.At<Vec3b>(y, x);
                var b = second.At<Vec3b>(y, x);
                for (int c = 0; c < 3; c++)
                {
                    bytes[(y * w + x) * 3 + c] = a[c];
                    bytes[h * w * 3 + (y * w + x) * 3 + c] = b[c];
                }
            }
        var expected = (tensor(bytes).view(2, h, w, 3).flip(3).permute(0, 3, 1, 2).to_type(ScalarType.Float32) / 255f).contiguous();
        var reference = expected.data<float>().ToArray();
        Assert.Equal(reference.Length, pixels.Length);
        for (int i = 0; i < pixels.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(reference[i]) == BitConverter.SingleToInt32Bits(pixels[i]), $"index {i}: {pixels[i]} vs {reference[i]}");
        Assert.Equal(7 / 255f, pixels[1]);                     // image 0, R plane, (0, 1): v = 1, R = 1·7
        Assert.Equal(1f, pixels[h * w]);                       // its G plane at (0, 0): 255 − 0
        Assert.Equal(0f, pixels[2 * h * w]);                   // its B plane at (0, 0): v = 0
        Assert.Equal(30 / 255f, pixels[3 * h * w]);            // image 1 starts with its R plane: BGR (10, 20, 30)
        Assert.Equal(10 / 255f, pixels[3 * h * w + 2 * h * w]); // … and ends with its B plane
    }

    [Fact]
    public void ToTensor_has_the_batch_shape()
    {
        using var a = new Mat(4, 6, MatType.CV_8UC3, new Scalar(0, 0, 255));
        using var t = Letterbox.ToTensor(new[] { a, a, a });
        Assert.Equal(new long[] { 3, 3, 4, 6 }, t.shape);
        Assert.Equal(1f, t[0, 0, 0, 0].item<float>());
        Assert.Equal(0f, t[2, 2, 3, 5].item<float>());
    }
}
