import { describe, expect, it } from 'vitest';
import { takeTokenFromHash } from './session';
import { parseRoute } from './route';

describe('a token in the fragment', () => {
  it('is taken out of a route', () => {
    expect(takeTokenFromHash('#/boardrooms/3?token=XYZ')).toEqual({ route: '#/boardrooms/3', token: 'XYZ' });
    expect(takeTokenFromHash('#/mine?a=1&token=XYZ')).toEqual({ route: '#/mine?a=1', token: 'XYZ' });
  });

  it('may be the whole fragment', () => {
    expect(takeTokenFromHash('#token=XYZ')).toEqual({ route: '', token: 'XYZ' });
  });

  it('is absent from ordinary routes', () => {
    expect(takeTokenFromHash('#/dashboard')).toEqual({ route: '#/dashboard', token: null });
    expect(takeTokenFromHash('')).toEqual({ route: '', token: null });
  });
});

describe('routes', () => {
  it('name a view', () => {
    expect(parseRoute('#/boardrooms/12')).toEqual({ name: 'boardroom', id: 12 });
    expect(parseRoute('#/mine')).toEqual({ name: 'mine' });
    expect(parseRoute('#/boardrooms/x')).toEqual({ name: 'dashboard' });
    expect(parseRoute('')).toEqual({ name: 'dashboard' });
  });
});
