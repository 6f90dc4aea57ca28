namespace Osprey.Tuning;

/// <summary>A finished trial as the genetic tuner sees it: its fitness (0 for a failed one, as Ultralytics records it)
/// and its hyperparameters.</summary>
public sealed record ScoredTrial(double Fitness, IReadOnlyDictionary<string, double> Values);

/// <summary>
/// Ultralytics' genetic rule (<c>Tuner._mutate</c>, 8.3, <c>parent="single"</c>): take the best
/// <see cref="ParentCount"/> results by fitness, pick one parent with weights fitness − min + 1e-6
/// (<c>random.choices</c>), multiply each gene by <c>(gain · (u &lt; 0.8) · randn · r · 0.2 + 1).clip(0.3, 3.0)</c>
/// (u and randn per gene, r one draw for all) until at least one factor differs from 1, then clamp to the space and round
/// to 5 places. Ultralytics seeds numpy with the clock; here every draw comes from a <see cref="TuneRandom"/> of
/// (seed, trial), so a trial's genes are a function of the seed, its index and the results it is bred from.
/// </summary>
public static class GeneticMutation
{
    /// <summary>How many of the best results may be a parent (Ultralytics' <c>n=5</c>).</summary>
    public const int ParentCount = 5;

    /// <summary>The chance that a gene mutates (Ultralytics' <c>mutation=0.8</c>).</summary>
    public const double MutationProbability = 0.8;

    /// <summary>The mutation's scale (Ultralytics' <c>sigma=0.2</c>).</summary>
    public const double Sigma = 0.2;

    /// <summary>The best <see cref="ParentCount"/> results, best first (ties keep their order: earlier trials first).</summary>
    public static IReadOnlyList<ScoredTrial> Parents(IReadOnlyList<ScoredTrial> results) =>
        results.Select((r, i) => (r, i)).OrderByDescending(p => p.r.Fitness).ThenBy(p => p.i).Take(ParentCount).Select(p => p.r).ToArray();

    /// <summary>The selection weights of <paramref name="parents"/>: fitness − the lowest fitness among them + 1e-6.</summary>
    public static double[] SelectionWeights(IReadOnlyList<ScoredTrial> parents)
    {
        double lowest = parents.Min(p => p.Fitness);
        return parents.Select(p => p.Fitness - lowest + 1e-6).ToArray();
    }

    /// <summary>Python's <c>random.choices(range(n), weights)[0]</c>: the first index whose cumulative weight exceeds
    /// <c>random() · total</c>.</summary>
    public static int Pick(IReadOnlyList<double> weights, TuneRandom random)
    {
        var cumulative = new double[weights.Count];
        double total = 0;
        for (int i = 0; i < weights.Count; i++) cumulative[i] = total += weights[i];
        double x = random.NextDouble() * total;
        for (int i = 0; i < weights.Count - 1; i++)
            if (x < cumulative[i]) return i;
        return weights.Count - 1;
    }

    /// <summary>The multiplicative factors of one mutation, drawn until at least one is not 1.</summary>
    public static double[] Factors(SearchSpace space, TuneRandom random)
    {
        int genes = space.Dimensions.Count;
        var factors = Enumerable.Repeat(1.0, genes).ToArray();
        if (space.Dimensions.All(d => d.Gain == 0)) return factors; // nothing can change
        while (factors.All(f => f == 1.0))
        {
            var mutates = Enumerable.Range(0, genes).Select(_ => random.NextDouble() < MutationProbability).ToArray();
            var normal = Enumerable.Range(0, genes).Select(_ => random.NextGaussian()).ToArray();
            double scale = random.NextDouble();
            for (int g = 0; g < genes; g++)
                factors[g] = Math.Clamp(space.Dimensions[g].Gain * (mutates[g] ? 1 : 0) * normal[g] * scale * Sigma + 1, 0.3, 3.0);
        }
        return factors;
    }

    /// <summary>
    /// A child of <paramref name="results"/>: one parent among the best, picked by weight, its genes multiplied by
    /// <see cref="Factors"/>, clamped and rounded (<see cref="SearchDimension.Constrain"/>).
    /// </summary>
    /// <param name="space">The genes.</param>
    /// <param name="results">Finished trials to breed from (at least one).</param>
    /// <param name="random">This trial's random numbers.</param>
    public static IReadOnlyDictionary<string, double> Mutate(SearchSpace space, IReadOnlyList<ScoredTrial> results, TuneRandom random)
    {
        if (results.Count == 0) throw new ArgumentException("the genetic tuner breeds from at least one result", nameof(results));
        var parents = Parents(results);
        var parent = parents[Pick(SelectionWeights(parents), random)];
        var factors = Factors(space, random);
        return space.Dimensions.Select((d, g) => (d, g))
            .ToDictionary(p => p.d.Key, p => p.d.Constrain(parent.Values[p.d.Key] * factors[p.g]), StringComparer.Ordinal);
    }
}
