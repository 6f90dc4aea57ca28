namespace Osprey.Plotting;

/// <summary>scipy.ndimage.gaussian_filter1d (order 0, mode 'reflect', truncate 4), as Ultralytics smooths results.png.</summary>
internal static class GaussianFilter
{
    public static double[] Filter1D(IReadOnlyList<double> values, double sigma)
    {
        int n = values.Count;
        var result = new double[n];
        if (n == 0) return result;
        int radius = (int)(4.0 * sigma + 0.5);
        var weights = new double[2 * radius + 1];
        double sum = 0;
        for (int k = -radius; k <= radius; k++) sum += weights[k + radius] = Math.Exp(-0.5 * k * k / (sigma * sigma));
        for (int i = 0; i < n; i++)
        {
            double acc = 0;
            for (int k = -radius; k <= radius; k++) acc += weights[k + radius] * values[Reflect(i + k, n)];
            result[i] = acc / sum;
        }
        return result;
    }

    /// <summary>'reflect' (d c b a | a b c d | d c b a), repeated for any offset.</summary>
    internal static int Reflect(int index, int n)
    {
        int period = 2 * n;
        int m = ((index % period) + period) % period;
        return m < n ? m : period - 1 - m;
    }
}
